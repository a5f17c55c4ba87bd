"""Helpers for the ingestion tests: documents, failing embeddings, database snapshots."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from sqlalchemy.engine import Engine

from ingest.indexing import IndexStats, index_source
from tests.conftest import personal_space
from tests.fakes import HashEmbeddings


def file_documents(source_id: str, *texts: str, **metadata: Any) -> list[Document]:
    """Already-split chunks of one file source, as a loader + splitter would produce."""
    return [
        Document(
            page_content=text,
            metadata={
                "title": source_id,
                "source_type": "file",
                "source_id": source_id,
                "chunk_index": i,
                **metadata,
            },
        )
        for i, text in enumerate(texts)
    ]


def index_file(
    engine: Engine,
    embeddings: Embeddings,
    user_id: uuid.UUID,
    source_id: str,
    documents: list[Document],
    **options: Any,
) -> IndexStats:
    """`index_source` for a file source in the user's personal space, as `ingest.files`
    calls it."""
    return index_source(
        engine=engine,
        embeddings=embeddings,
        user_id=user_id,
        space_id=options.pop("space_id", None) or personal_space(engine, user_id),
        source_type="file",
        source_id=source_id,
        documents=documents,
        **options,
    )


class FailingEmbeddings(HashEmbeddings):
    """Works like `HashEmbeddings` until call number `fail_on_call`, which raises."""

    def __init__(self, fail_on_call: int) -> None:
        super().__init__()
        self.fail_on_call = fail_on_call

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if self.calls + 1 == self.fail_on_call:
            self.calls += 1
            raise RuntimeError("embedding service went away")
        return super().embed_documents(texts)


def chunk_snapshot(engine: Engine, user_id: uuid.UUID | None = None) -> list[tuple[Any, ...]]:
    """Every chunk row (as the table owner, i.e. past row-level security), sorted."""
    query = (
        "SELECT space_id, source_type, source_id, chunk_index, chunk_id, text FROM document_chunks"
    )
    params: dict[str, Any] = {}
    if user_id is not None:
        query += " WHERE space_id IN (SELECT id FROM spaces WHERE personal_of = :u)"
        params["u"] = user_id
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(sa.text(query), params))


def record_snapshot(engine: Engine, user_id: uuid.UUID | None = None) -> list[tuple[Any, ...]]:
    """Every indexing record (namespace, key, user, group, time), sorted."""
    query = "SELECT namespace, key, space_id, group_id, updated_at FROM index_records"
    params: dict[str, Any] = {}
    if user_id is not None:
        query += " WHERE space_id IN (SELECT id FROM spaces WHERE personal_of = :u)"
        params["u"] = user_id
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(sa.text(query), params))


def chunk_texts(engine: Engine, user_id: uuid.UUID, source_id: str) -> list[str]:
    """The texts of one source's chunks in chunk order."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT text FROM document_chunks WHERE added_by = :u AND source_id = :s "
                    "ORDER BY chunk_index"
                ),
                {"u": user_id, "s": source_id},
            ).scalars()
        )
