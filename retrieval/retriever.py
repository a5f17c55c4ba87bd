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
from retrieval.feedback import feedback_cosines
from retrieval.fusion import Candidate, fuse
from retrieval.keyword import KeywordResult, bm25_scores, keyword_search
from retrieval.passages import Passage, SearchFilters, SearchMode, check_mode
from retrieval.scope import SearchScope, SpaceSizes, resolve_scope

__all__ = ["Retriever"]

# How many candidates each side contributes per result wanted: fusion needs more than
# top_k from each list, or a passage ranked 8th by both sides never gets the chance to
# win.
CANDIDATE_FACTOR = 4
MIN_CANDIDATES = 40
# The fusion of the (dense, keyword) lists (see `retrieval.fusion`): 0.6 * cosine +
# 0.4 * BM25 / (the question's largest possible BM25), each candidate scored on both
# sides, the cosine taken to the question's vector moved a quarter of the way towards
# its 5 nearest passages (`retrieval.feedback`). Chosen on SciFact's training split only
# (`bench/fusion.py --split train`, 809 questions): convex combinations beat weighted
# RRF (best 0.723) and the min-max and z-score normalisations (0.738); the best of the
# grid was this fusion with alpha 0.45 (0.742, 0.741 without feedback), and the
# one-standard-error rule (0.013) took the largest alpha within it, 0.6 (0.732): the
# dense side is the one that carries over to sets where keywords are weak.
HYBRID_FUSION = "convex-max"
HYBRID_PARAMS: dict[str, float] = {"alpha": 0.6}
FEEDBACK_PASSAGES = 5
FEEDBACK_WEIGHT = 0.25
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
            return (await self._keyword(engine, query, user_id, scope, k, where, None)).passages
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
        return await self._fuse(engine, query, query_vector, user_id, scope, nearest, matching, k)

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

    async def _fuse(
        self,
        engine: AsyncEngine,
        query: str,
        query_vector: Sequence[float],
        user_id: uuid.UUID,
        scope: SearchScope,
        nearest: list[Passage],
        matching: KeywordResult,
        k: int,
    ) -> list[Passage]:
        """One ranking of both lists by `HYBRID_FUSION`, which judges every candidate
        on both sides: the passages only the dense side found get their BM25 here, and
        every candidate its cosine to the question moved towards its nearest passages
        (`retrieval.feedback`; two more statements, on a few dozen rows). The passages
        returned keep their cosine to the question itself as `similarity`."""
        passages: dict[str, Passage] = {}
        for passage in [*nearest, *matching.passages]:
            known = passages.get(passage.chunk_id)
            if known is None or (known.similarity is None and passage.similarity is not None):
                passages[passage.chunk_id] = passage
        keyword_scores = {p.chunk_id: p.score for p in matching.passages}
        missing = [c for c in passages if c not in keyword_scores]

        def score(sync: sa.Connection) -> dict[str, float]:
            if missing:
                keyword_scores.update(
                    bm25_scores(sync, scope=scope, query=query, chunk_ids=missing)
                )
            return feedback_cosines(
                sync,
                space_ids=scope.space_ids,
                query_vector=query_vector,
                feedback_ids=[p.chunk_id for p in nearest[:FEEDBACK_PASSAGES]],
                chunk_ids=list(passages),
                weight=FEEDBACK_WEIGHT,
            )

        with read_scope(ReadScope(user_id=user_id)):
            async with engine.connect() as connection:
                cosines = await connection.run_sync(score)
        dense_rank = {p.chunk_id: i for i, p in enumerate(nearest, start=1)}
        keyword_rank = {p.chunk_id: i for i, p in enumerate(matching.passages, start=1)}
        candidates = [
            Candidate(
                key=chunk_id,
                cosine=cosines.get(chunk_id, passage.similarity or 0.0),
                bm25=keyword_scores.get(chunk_id, 0.0),
                dense_rank=dense_rank.get(chunk_id),
                keyword_rank=keyword_rank.get(chunk_id),
            )
            for chunk_id, passage in passages.items()
        ]
        ranked = fuse(HYBRID_FUSION, candidates, bm25_max=matching.max_score, **HYBRID_PARAMS)
        return [passages[c.key].rescored(score) for c, score in ranked[:k]]

    async def _keyword(
        self,
        engine: AsyncEngine,
        query: str,
        user_id: uuid.UUID,
        scope: SearchScope,
        limit: int,
        filters: SearchFilters,
        query_vector: Sequence[float] | None,
    ) -> KeywordResult:
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
