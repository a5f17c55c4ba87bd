"""Per-user retrieval: vector, keyword and hybrid search over `document_chunks`.

`search_documents` is the seed's function; `UserRetriever` wraps it as a LangChain
retriever bound to one user. The dense (vector) list comes from langchain-postgres's
`PGVectorStore` (`retrieval.pgvector_store`, on per-user connections that start
scoped); the keyword list and the weighted fusion are our SQL (`retrieval.search_sql`).
The user scope is enforced in SQL (`WHERE user_id` / the store's filter) and by
row-level security (`db.scoped.user_scope` / the scoped connections), never by
filtering in Python.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict
from sqlalchemy.engine import Engine

from db.errors import InvalidInput
from db.scoped import user_scope
from retrieval.pgvector_store import dense_search, start_dense_search
from retrieval.search_sql import (
    ChunkHit,
    SearchFilters,
    keyword_search,
    reciprocal_rank_fusion,
)

__all__ = ["MODES", "Passage", "SearchMode", "UserRetriever", "search_documents"]

SearchMode = Literal["hybrid", "vector", "keyword"]
MODES: tuple[str, ...] = get_args(SearchMode)

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


@dataclass(frozen=True)
class Passage:
    """One retrieved chunk with its score and where it came from.

    `score` is the mode's own score: cosine similarity (vector), `ts_rank_cd`
    (keyword) or the fused RRF score (hybrid). `similarity` is the cosine similarity
    to the question whenever a query vector was computed (vector and hybrid), which
    is what the "don't know" threshold compares against.
    """

    chunk_id: str
    text: str
    score: float
    source_type: str
    source_id: str
    source_url: str | None
    title: str | None
    page: int | None
    metadata: dict[str, Any] = field(default_factory=dict)
    similarity: float | None = None

    def to_document(self) -> Document:
        """A LangChain Document carrying the passage's fields in its metadata."""
        metadata = {
            **self.metadata,
            "chunk_id": self.chunk_id,
            "score": self.score,
            "similarity": self.similarity,
            "source_type": self.source_type,
            "source_id": self.source_id,
            "source_url": self.source_url,
            "title": self.title,
            "page": self.page,
        }
        return Document(page_content=self.text, metadata=metadata, id=self.chunk_id)


def _page(metadata: dict[str, Any]) -> int | None:
    value = metadata.get("page")
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _passage(hit: ChunkHit, score: float) -> Passage:
    title = hit.metadata.get("title")
    return Passage(
        chunk_id=hit.chunk_id,
        text=hit.text,
        score=score,
        source_type=hit.source_type,
        source_id=hit.source_id,
        source_url=hit.source_url,
        title=str(title) if title else None,
        page=_page(hit.metadata),
        metadata=hit.metadata,
        similarity=hit.similarity,
    )


def check_mode(mode: str) -> SearchMode:
    if mode not in MODES:
        raise InvalidInput(
            f"Unknown retrieval mode {mode!r}.", hint=f"Use one of: {', '.join(MODES)}."
        )
    return cast(SearchMode, mode)


def search_documents(
    query: str,
    user_id: uuid.UUID,
    top_k: int = 5,
    *,
    engine: Engine,
    embeddings: Embeddings,
    mode: str = "hybrid",
    filters: dict[str, str] | None = None,
    candidates: int | None = None,
) -> list[Passage]:
    """The `top_k` passages of `user_id` most relevant to `query`, best first.

    `candidates` (hybrid only) is how many rows each side contributes to the fusion;
    by default `max(MIN_CANDIDATES, CANDIDATE_FACTOR * top_k)`.
    """
    search_mode = check_mode(mode)
    if top_k < 1:
        raise InvalidInput(f"top_k must be at least 1 (got {top_k}).", hint="Ask for 1 or more.")
    where = SearchFilters.from_dict(filters)
    query = query.strip()
    if not query:
        return []
    query_vector = embeddings.embed_query(query) if search_mode != "keyword" else None
    if search_mode == "vector":
        assert query_vector is not None
        hits = dense_search(
            engine, user_id=user_id, query_vector=query_vector, limit=top_k, filters=where
        )
        return [_passage(h, h.score) for h in hits]
    if search_mode == "keyword":
        with user_scope(engine, user_id) as connection:
            hits = keyword_search(
                connection, user_id=user_id, query=query, limit=top_k, filters=where
            )
        return [_passage(h, h.score) for h in hits]
    assert query_vector is not None
    depth = candidates or max(MIN_CANDIDATES, CANDIDATE_FACTOR * top_k)
    # The dense query runs on the store's own connection and event loop: the keyword
    # query runs meanwhile, on this thread.
    dense = start_dense_search(
        engine, user_id=user_id, query_vector=query_vector, limit=depth, filters=where
    )
    with user_scope(engine, user_id) as connection:
        sparse = keyword_search(
            connection,
            user_id=user_id,
            query=query,
            limit=depth,
            filters=where,
            query_vector=query_vector,
        )
    fused = reciprocal_rank_fusion(
        [dense.result(), sparse], k=RRF_K, weights=HYBRID_WEIGHTS, limit=top_k
    )
    return [_passage(hit, score) for hit, score in fused]


class UserRetriever(BaseRetriever):
    """A LangChain retriever over one user's chunks.

    Documents carry `score`, `similarity`, `chunk_id`, `title`, `page` and the source
    fields in their metadata; `search()` returns the typed `Passage`s instead.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    engine: Engine
    embeddings: Embeddings
    user_id: uuid.UUID
    mode: str = "hybrid"
    top_k: int = 5
    filters: dict[str, str] | None = None

    def search(self, query: str) -> list[Passage]:
        return search_documents(
            query,
            self.user_id,
            self.top_k,
            engine=self.engine,
            embeddings=self.embeddings,
            mode=self.mode,
            filters=self.filters,
        )

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [p.to_document() for p in self.search(query)]
