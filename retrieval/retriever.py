"""Retrieval over the spaces a user can read: vector, keyword and hybrid search.

`Retriever.search` is the seed's `search_documents`. It resolves the readable spaces
first (`retrieval.scope`: the user's memberships, narrowed to the spaces asked for),
then the dense list comes from langchain-postgres's `PGVectorStore`
(`retrieval.dense`) and the keyword list from our SQL (`retrieval.keyword`), both on
the read engine inside the user's `ReadScope`; hybrid runs the two concurrently and
fuses them (`retrieval.fusion`). The scope is enforced in SQL (the space filter) and
by row-level security (the scoped connections), never by filtering in Python.

With read replicas, a `db.replicas.ReadRouter` picks the server of each search (a
replica, or the primary for a person's reads right after their own writes); a search
that fails because its replica went away runs again on the primary.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import sqlalchemy as sa
from langchain_core.embeddings import Embeddings
from sqlalchemy.ext.asyncio import AsyncEngine

from db.errors import InvalidInput
from db.replicas import ReadRouter, Route
from db.scoped import ReadScope, read_scope
from retrieval.dense import DenseSearch
from retrieval.fusion import reciprocal_rank_fusion
from retrieval.keyword import keyword_search
from retrieval.passages import Passage, SearchFilters, SearchMode, check_mode
from retrieval.scope import SearchScope, SpaceSizes, resolve_scope

__all__ = ["Retriever"]

# Reciprocal rank fusion constant (Cormack et al. 2009) and how many candidates each
# side contributes per result wanted: fusion needs more than top_k from each list,
# or a passage ranked 8th by both sides never gets the chance to win.
RRF_K = 60
CANDIDATE_FACTOR = 4
MIN_CANDIDATES = 40
# Weights of the (vector, keyword) lists in the fusion. The dense side is the stronger
# signal with all-MiniLM-L6-v2; halving the keyword side kept SciFact's hybrid gain
# (nDCG@10 0.700 vs 0.704 at equal weights) and stopped BM25-weak sets losing to pure
# vector (DBpedia subset 0.472 -> 0.499, MS MARCO subset 0.789 -> 0.797).
HYBRID_WEIGHTS = (1.0, 0.5)
# Readable sets of at most this many chunks are searched exactly (see retrieval.dense).
EXACT_SCAN_MAX_CHUNKS = 20_000
T = TypeVar("T")


class Retriever:
    """Searches the spaces one user can read; built once, shared by every request.

    `engine` is the primary's read engine; `router` (optional) sends searches to read
    replicas when they are fresh enough for the person asking.
    """

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        embeddings: Embeddings,
        exact_scan_max_chunks: int = EXACT_SCAN_MAX_CHUNKS,
        router: ReadRouter | None = None,
    ) -> None:
        self.engine = engine
        self.embeddings = embeddings
        self.exact_scan_max_chunks = exact_scan_max_chunks
        self.space_sizes = SpaceSizes()
        self.router = router
        self._dense: dict[int, DenseSearch] = {}
        self._dense_lock = asyncio.Lock()

    async def dense(self, engine: AsyncEngine | None = None) -> DenseSearch:
        """The dense store on `engine` (default: the primary's), created on first use
        (it reads the table's columns)."""
        engine = engine or self.engine
        async with self._dense_lock:
            if id(engine) not in self._dense:
                self._dense[id(engine)] = await DenseSearch.create(engine)
            return self._dense[id(engine)]

    async def search(
        self,
        query: str,
        *,
        user_id: uuid.UUID,
        spaces: Sequence[uuid.UUID] | None = None,
        k: int = 5,
        mode: str = "hybrid",
        filters: dict[str, str] | None = None,
        candidates: int | None = None,
        query_vector: Sequence[float] | None = None,
        engine: AsyncEngine | None = None,
    ) -> list[Passage]:
        """The `k` passages most relevant to `query` in the spaces `user_id` can read
        (all of them, or those of `spaces` among them), best first.

        `candidates` (hybrid only) is how many rows each side contributes to the fusion;
        by default `max(MIN_CANDIDATES, CANDIDATE_FACTOR * k)`. `query_vector` skips
        embedding the query (benchmarks pass it). `engine` runs the search there (a
        caller inside `on_reader`); by default the router picks the server.
        """
        search_mode: SearchMode = check_mode(mode)
        if k < 1:
            raise InvalidInput(f"top_k must be at least 1 (got {k}).", hint="Ask for 1 or more.")
        where = SearchFilters.from_dict(filters)
        query = query.strip()
        if not query:
            return []
        search = functools.partial(
            self._search,
            query=query,
            user_id=user_id,
            spaces=spaces,
            k=k,
            mode=search_mode,
            where=where,
            candidates=candidates,
            query_vector=query_vector,
        )
        if engine is not None:
            return await search(engine)
        return await self.on_reader(user_id, search)

    async def on_reader(self, user_id: uuid.UUID, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
        """Run `work` (reads for `user_id`) on the server the router picks: a replica
        fresh enough for this person, else the primary; work that fails because its
        replica went away (or cancelled the query to replay WAL) runs again on the
        primary."""
        route = await self._route(user_id)
        try:
            return await work(route.engine)
        except (sa.exc.DBAPIError, sa.exc.DisconnectionError, OSError) as error:
            if self.router is None or route.replica is None:
                raise
            return await work(self.router.fallback(route, error).engine)

    async def _route(self, user_id: uuid.UUID) -> Route:
        if self.router is None:
            return Route("primary", self.engine, "no_replica")
        return await self.router.route(user_id)

    async def _search(
        self,
        engine: AsyncEngine,
        *,
        query: str,
        user_id: uuid.UUID,
        spaces: Sequence[uuid.UUID] | None,
        k: int,
        mode: SearchMode,
        where: SearchFilters,
        candidates: int | None,
        query_vector: Sequence[float] | None,
    ) -> list[Passage]:
        scope = await self.scope(user_id, spaces, engine=engine)
        if not scope.spaces:
            return []
        if mode == "keyword":
            return await self._keyword(engine, query, user_id, scope, k, where, None)
        if query_vector is None:
            # CPU work: off the event loop.
            query_vector = await asyncio.to_thread(self.embeddings.embed_query, query)
        dense = await self.dense(engine)
        if mode == "vector":
            return await dense.search(
                user_id=user_id, scope=scope, query_vector=query_vector, limit=k, filters=where
            )
        depth = candidates or max(MIN_CANDIDATES, CANDIDATE_FACTOR * k)
        nearest, matching = await asyncio.gather(
            dense.search(
                user_id=user_id, scope=scope, query_vector=query_vector, limit=depth, filters=where
            ),
            self._keyword(engine, query, user_id, scope, depth, where, query_vector),
        )
        return reciprocal_rank_fusion([nearest, matching], k=RRF_K, weights=HYBRID_WEIGHTS, limit=k)

    async def scope(
        self,
        user_id: uuid.UUID,
        spaces: Sequence[uuid.UUID] | None = None,
        *,
        engine: AsyncEngine | None = None,
    ) -> SearchScope:
        """The spaces a search by `user_id` reads (see `retrieval.scope`)."""
        with read_scope(ReadScope(user_id=user_id)):
            async with (engine or self.engine).connect() as connection:
                return await connection.run_sync(
                    lambda sync: resolve_scope(
                        sync,
                        user_id=user_id,
                        wanted=spaces,
                        cap=self.exact_scan_max_chunks,
                        sizes=self.space_sizes,
                    )
                )

    async def _keyword(
        self,
        engine: AsyncEngine,
        query: str,
        user_id: uuid.UUID,
        scope: SearchScope,
        limit: int,
        filters: SearchFilters,
        query_vector: Sequence[float] | None,
    ) -> list[Passage]:
        with read_scope(ReadScope(user_id=user_id)):
            async with engine.connect() as connection:
                return await connection.run_sync(
                    lambda sync: keyword_search(
                        sync,
                        scope=scope,
                        query=query,
                        limit=limit,
                        filters=filters,
                        query_vector=query_vector,
                    )
                )
