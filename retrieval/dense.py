"""Dense (vector) search: langchain-postgres's `PGVectorStore` over `document_chunks`.

The one dense-search path: answers, `kb eval` and the benches all come here. The
store is mapped onto our table (`chunk_id`, `text`, `embedding`, `metadata` + the
source columns) and runs on the read engine (`db.scoped.make_read_engine`), whose
connections take the caller's `ReadScope` at checkout: the role row-level security
binds, `app.user_id`, pgvector's iterative scan and the `ef_search` for this search.
The store's filter restricts to the user in SQL as well.

Writes never go through this store: it opens and commits its own connections row
by row and could not join the per-file transaction that makes indexing
all-or-nothing (see `ingest.chunk_writer`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from langchain_core.embeddings import Embeddings
from langchain_postgres.v2.engine import PGEngine
from langchain_postgres.v2.vectorstores import PGVectorStore
from sqlalchemy.ext.asyncio import AsyncEngine

from db.scoped import ReadScope, read_scope
from retrieval.passages import Passage, SearchFilters

__all__ = ["DenseSearch", "ef_search_for"]

_TABLE = "document_chunks"
_METADATA_COLUMNS = ["user_id", "source_type", "source_id", "source_url", "chunk_index"]


def ef_search_for(limit: int) -> int:
    """`hnsw.ef_search` for a search of `limit` rows: at least 100 and twice the limit,
    at most pgvector's 1000."""
    return min(1000, max(100, 2 * limit))


class _QueryVectorsOnly(Embeddings):
    """The store's embedding service: searches here always pass the query vector."""

    def embed_query(self, text: str) -> list[float]:
        raise RuntimeError("DenseSearch searches by vector only")

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise RuntimeError("writes go through ingest.chunk_writer.ChunkWriter")


class DenseSearch:
    """Nearest chunks by cosine distance, for one user at a time."""

    def __init__(self, store: PGVectorStore) -> None:
        self._store = store

    @classmethod
    async def create(cls, engine: AsyncEngine) -> DenseSearch:
        """The store over `document_chunks` on `engine` (checks the table's columns)."""
        store = await PGVectorStore.create(
            PGEngine.from_engine(engine),
            _QueryVectorsOnly(),
            _TABLE,
            id_column="chunk_id",
            content_column="text",
            embedding_column="embedding",
            metadata_columns=list(_METADATA_COLUMNS),
            metadata_json_column="metadata",
        )
        return cls(store)

    async def search(
        self,
        *,
        user_id: uuid.UUID,
        query_vector: Sequence[float],
        limit: int,
        filters: SearchFilters | None = None,
    ) -> list[Passage]:
        """The `limit` chunks of `user_id` nearest to `query_vector`, best first.

        `score` and `similarity` are the cosine similarity (1 - the store's distance).
        The iterative scan's `relaxed_order` may return rows slightly out of order, so
        they are sorted again here (ties by chunk id, for stable results).
        """
        with read_scope(ReadScope(user_id=user_id, ef_search=ef_search_for(limit))):
            found = await self._store.asimilarity_search_with_score_by_vector(
                [float(v) for v in query_vector],
                k=limit,
                filter=_store_filter(user_id, filters or SearchFilters()),
            )
        passages = []
        for document, distance in found:
            metadata = dict(document.metadata)
            # The store merges the columns into the metadata; the uuid column would not
            # serialise as JSON, and the chunk's own metadata stores it as text.
            metadata["user_id"] = str(metadata["user_id"])
            similarity = 1.0 - float(distance)
            passages.append(
                Passage(
                    chunk_id=str(document.id),
                    text=document.page_content,
                    source_type=str(metadata["source_type"]),
                    source_id=str(metadata["source_id"]),
                    source_url=metadata.get("source_url"),
                    chunk_index=int(metadata.get("chunk_index") or 0),
                    score=similarity,
                    similarity=similarity,
                    metadata=metadata,
                )
            )
        passages.sort(key=lambda p: (-p.score, p.chunk_id))
        return passages


def _store_filter(user_id: uuid.UUID, filters: SearchFilters) -> dict[str, Any]:
    """The store's filter language for the user and `filters`."""
    clauses: list[dict[str, Any]] = [{"user_id": {"$eq": str(user_id)}}]
    clauses += [{column: {"$eq": value}} for column, value in filters.equalities().items()]
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}
