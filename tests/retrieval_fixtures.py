"""Helpers for retrieval tests: write chunks for a user with any embeddings."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from langchain_core.embeddings import Embeddings
from sqlalchemy.engine import Engine

from db.chunks import ChunkRow, insert_chunks
from db.scoped import user_scope
from tests.conftest import personal_space


def add_passages(
    engine: Engine,
    embeddings: Embeddings,
    user_id: uuid.UUID,
    passages: Sequence[tuple[str, str]],
    *,
    source_type: str = "file",
    prefix: str | None = None,
    extra_metadata: dict[str, Any] | None = None,
    space_id: uuid.UUID | None = None,
) -> list[str]:
    """Write `[(title, text)]` as one-chunk sources named after their titles, as `user_id`
    into `space_id` (default: their personal space); returns chunk ids."""
    prefix = prefix or str(user_id)[:8]
    vectors = embeddings.embed_documents([f"{title}\n{text}" for title, text in passages])
    rows = [
        ChunkRow(
            chunk_id=f"{prefix}-{i}",
            space_id=space_id or personal_space(engine, user_id),
            added_by=user_id,
            text=text,
            embedding=vector,
            source_type=source_type,
            source_id=f"{title}.md",
            source_url=f"https://example.test/{prefix}/{i}",
            metadata={"title": title, "page": i + 1, **(extra_metadata or {})},
        )
        for i, ((title, text), vector) in enumerate(zip(passages, vectors, strict=True))
    ]
    with user_scope(engine, user_id) as connection:
        insert_chunks(connection, rows)
    return [r.chunk_id for r in rows]
