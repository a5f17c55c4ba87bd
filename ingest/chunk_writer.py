"""`ChunkWriter`: a LangChain `VectorStore` over `document_chunks`, for one space: the WRITE side.

The split over `document_chunks`: writes go through this store, reads (every search)
through langchain-postgres's `PGVectorStore` in `retrieval/dense.py`, on read-engine
connections scoped at checkout.

The store is bound to ONE SQLAlchemy `Connection` that the caller opened with
`db.scoped.user_scope(engine, user_id)`: every write joins the caller's
transaction (so indexing a file is all-or-nothing) and runs under row-level
security (the user must be an editor of the space) as well as filtering by
`space_id` in SQL.

Why not langchain-postgres's `PGVectorStore` for writes: it takes a `PGEngine`
and opens (and commits on) its own connections, row by row (~730 rows/s measured
here), so it cannot join the per-file transaction: a failure halfway through a file
would leave half of its new chunks written. Here `add_documents` embeds in
batches (one `embed_documents` call per batch) and writes each batch with one
multi-row INSERT through `db.chunks.insert_chunks` (COPY is refused on tables under
row-level security). Searching needs no transaction, so there the library's store
is used as it is.

LangChain's indexing API takes a `VectorStore` but never searches it: the search
methods refuse, pointing at `retrieval`, so there is one dense-search path.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import sqlalchemy as sa
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from sqlalchemy.engine import Connection

from db.chunks import ChunkRow, delete_chunks, insert_chunks
from db.models import DocumentChunk

__all__ = ["COLUMN_METADATA_KEYS", "ChunkWriter"]

# Metadata keys that also have their own column in `document_chunks`.
COLUMN_METADATA_KEYS = ("source_type", "source_id", "source_url", "chunk_index")

_table = cast("sa.Table", DocumentChunk.__table__)


class ChunkWriter(VectorStore):
    """The chunks of one space, written on one user-scoped connection by `added_by`."""

    def __init__(
        self,
        *,
        connection: Connection,
        embeddings: Embeddings,
        space_id: uuid.UUID,
        added_by: uuid.UUID | None,
        batch_size: int = 64,
    ) -> None:
        self.connection = connection
        self._embeddings = embeddings
        self.space_id = space_id
        self.added_by = added_by
        self.batch_size = batch_size
        self.embedding_calls = 0
        # Called with the number of chunks written so far, after each batch.
        self.on_batch: Callable[[int], None] | None = None

    @property
    def embeddings(self) -> Embeddings:
        return self._embeddings

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Embed `documents` in batches and write them; ids from `ids=` or `Document.id`."""
        ids: Sequence[str | None] = kwargs.get("ids") or [d.id for d in documents]
        if len(ids) != len(documents):
            raise ValueError(f"got {len(ids)} ids for {len(documents)} documents")
        batch_size = int(kwargs.get("batch_size") or self.batch_size)
        written: list[str] = []
        for start in range(0, len(documents), batch_size):
            batch = documents[start : start + batch_size]
            batch_ids = [i or str(uuid.uuid4()) for i in ids[start : start + batch_size]]
            vectors = self._embeddings.embed_documents([d.page_content for d in batch])
            self.embedding_calls += 1
            rows = [self._row(i, d, v) for i, d, v in zip(batch_ids, batch, vectors, strict=True)]
            insert_chunks(self.connection, rows)
            written.extend(batch_ids)
            if self.on_batch is not None:
                self.on_batch(len(written))
        return written

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        texts = list(texts)
        metadatas = metadatas or [{} for _ in texts]
        documents = [
            Document(page_content=t, metadata=m) for t, m in zip(texts, metadatas, strict=True)
        ]
        return self.add_documents(documents, ids=ids, **kwargs)

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete this space's chunks with these ids (others' ids are ignored)."""
        if ids is None:
            raise ValueError("ChunkWriter.delete needs explicit ids")
        delete_chunks(self.connection, space_id=self.space_id, chunk_ids=ids)
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        rows = self.connection.execute(
            sa.select(_table.c.chunk_id, _table.c.text, _table.c.metadata).where(
                _table.c.space_id == self.space_id, _table.c.chunk_id.in_(list(ids))
            )
        )
        return [Document(id=r.chunk_id, page_content=r.text, metadata=r.metadata) for r in rows]

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        raise NotImplementedError(
            "ChunkWriter only writes; search with retrieval.retriever.Retriever"
        )

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> ChunkWriter:
        """Needs `connection=` (a user-scoped Connection), `space_id=` and `added_by=`."""
        store = cls(
            connection=kwargs["connection"],
            embeddings=embedding,
            space_id=kwargs["space_id"],
            added_by=kwargs.get("added_by"),
        )
        store.add_texts(texts, metadatas, ids=ids)
        return store

    def _row(self, chunk_id: str, document: Document, vector: Sequence[float]) -> ChunkRow:
        metadata = dict(document.metadata)
        space = metadata.get("space_id")
        if space is not None and str(space) != str(self.space_id):
            raise ValueError(f"chunk {chunk_id} belongs to space {space}, not {self.space_id}")
        metadata["space_id"] = str(self.space_id)
        source_type = metadata.get("source_type")
        source_id = metadata.get("source_id")
        if not source_type or not source_id:
            raise ValueError(f"chunk {chunk_id} needs source_type and source_id metadata")
        return ChunkRow(
            chunk_id=chunk_id,
            space_id=self.space_id,
            added_by=self.added_by,
            # PostgreSQL text and JSONB cannot hold NUL; some PDFs produce it.
            text=document.page_content.replace("\x00", ""),
            embedding=vector,
            source_type=str(source_type),
            source_id=str(source_id),
            source_url=metadata.get("source_url"),
            chunk_index=int(metadata.get("chunk_index") or 0),
            metadata=metadata,
        )
