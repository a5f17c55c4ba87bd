"""Dense (vector) search: langchain-postgres's `PGVectorStore` over `document_chunks`.

The one dense-search path: answers, `kb eval` and the benches all come here. The
store is mapped onto our table (`chunk_id`, `text`, `embedding`, `metadata` + the
source columns) and runs on the read engine (`db.scoped.make_read_engine`), whose
connections take the caller's `ReadScope` at checkout: the role row-level security
binds, `app.user_id`, pgvector's iterative scan and the `ef_search` for this search.
The store's filter restricts to the readable spaces in SQL as well.

One HNSW index serves every space. When the readable set is large, the filtered
graph walk (with the iterative scan) finds its neighbours well; when it is small but
not tiny, the walk must visit most of the graph to collect enough of them and recall
drops. Small sets are therefore scanned exactly: index scans are switched off for that
query, so PostgreSQL reads the set through the space index and sorts by distance.

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
from retrieval.scope import SearchScope

__all__ = ["DenseSearch", "ef_search_for"]

_TABLE = "document_chunks"
_METADATA_COLUMNS = [
    "space_id",
    "added_by",
    "source_type",
    "source_id",
    "source_url",
    "chunk_index",
]


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
    """Nearest chunks by cosine distance in the spaces one user may read."""

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
        scope: SearchScope,
        query_vector: Sequence[float],
        limit: int,
        filters: SearchFilters | None = None,
    ) -> list[Passage]:
        """The `limit` chunks of the scope's spaces nearest to `query_vector`, best first,
        as `user_id` (row-level security admits only their spaces).

        `score` and `similarity` are the cosine similarity (1 - the store's distance).
        The iterative scan's `relaxed_order` may return rows slightly out of order, so
        they are sorted again here (ties by chunk id, for stable results).
        """
        if not scope.spaces:
            return []
        read = ReadScope(user_id=user_id, ef_search=ef_search_for(limit), exact=scope.small)
        with read_scope(read):
            found = await self._store.asimilarity_search_with_score_by_vector(
                [float(v) for v in query_vector],
                k=limit,
                filter=_store_filter(scope, filters or SearchFilters()),
            )
        passages = []
        for document, distance in found:
            metadata = dict(document.metadata)
            # The store merges the columns into the metadata; uuid columns would not
            # serialise as JSON, and the chunk's own metadata stores them as text.
            space_id = metadata["space_id"]
            metadata["space_id"] = str(space_id)
            metadata["space_name"] = scope.spaces.get(space_id)
            metadata["added_by"] = str(metadata["added_by"]) if metadata["added_by"] else None
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


def _store_filter(scope: SearchScope, filters: SearchFilters) -> dict[str, Any]:
    """The store's filter language for the scope's spaces and `filters`.

    Spaces are listed as `$eq`s under `$or`: the store's `$in` sends a text array,
    which PostgreSQL will not compare with the uuid column."""
    spaces = [{"space_id": {"$eq": str(space)}} for space in scope.space_ids]
    clauses: list[dict[str, Any]] = [spaces[0] if len(spaces) == 1 else {"$or": spaces}]
    clauses += [{column: {"$eq": value}} for column, value in filters.equalities().items()]
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}
