"""Repository for `document_chunks`: batched writes, deletes and per-source listings.

Callers pass a connection already inside `db.scoped.user_scope`, so row-level
security checks every row written (editors and owners of the space only); the SQL
filters by space as well. Writes use
multi-row INSERT (SQLAlchemy's insertmanyvalues): COPY is refused on tables under
row-level security.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from db.models import DocumentChunk, User

__all__ = [
    "ChunkRow",
    "SourceSummary",
    "delete_chunks",
    "delete_source",
    "insert_chunks",
    "list_sources",
]

_table: sa.Table = DocumentChunk.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class ChunkRow:
    """One chunk to write."""

    chunk_id: str
    space_id: uuid.UUID
    added_by: uuid.UUID | None
    text: str
    embedding: Sequence[float]
    source_type: str
    source_id: str
    source_url: str | None = None
    chunk_index: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceSummary:
    """One indexed source of a space."""

    space_id: uuid.UUID
    source_type: str
    source_id: str
    title: str | None
    source_url: str | None
    chunks: int
    updated_at: datetime
    added_by: str | None  # the login of who indexed it last


def insert_chunks(
    connection: Connection, rows: Sequence[ChunkRow], *, batch_size: int = 500
) -> int:
    """Insert (or replace, by chunk_id) rows; returns how many were written."""
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        stmt = pg_insert(_table).values(
            [
                {
                    "chunk_id": r.chunk_id,
                    "space_id": r.space_id,
                    "added_by": r.added_by,
                    "text": r.text,
                    "metadata": r.metadata,
                    "source_type": r.source_type,
                    "source_id": r.source_id,
                    "source_url": r.source_url,
                    "chunk_index": r.chunk_index,
                    "embedding": list(r.embedding),
                }
                for r in batch
            ]
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["chunk_id"],
            set_={
                c: stmt.excluded[c]
                for c in (
                    "text",
                    "metadata",
                    "source_type",
                    "source_id",
                    "source_url",
                    "chunk_index",
                    "embedding",
                    "added_by",
                )
            }
            | {"updated_at": sa.func.now()},
            where=_table.c.space_id == stmt.excluded.space_id,
        )
        connection.execute(stmt)
    return len(rows)


def delete_chunks(connection: Connection, *, space_id: uuid.UUID, chunk_ids: Sequence[str]) -> int:
    if not chunk_ids:
        return 0
    result = connection.execute(
        sa.delete(_table).where(
            _table.c.space_id == space_id, _table.c.chunk_id.in_(list(chunk_ids))
        )
    )
    return int(result.rowcount or 0)


def delete_source(
    connection: Connection, *, space_id: uuid.UUID, source_id: str, source_type: str | None = None
) -> int:
    """Delete every chunk of one source of one space; returns the count."""
    conditions = [_table.c.space_id == space_id, _table.c.source_id == source_id]
    if source_type:
        conditions.append(_table.c.source_type == source_type)
    result = connection.execute(sa.delete(_table).where(*conditions))
    return int(result.rowcount or 0)


def list_sources(
    connection: Connection, *, space_ids: Sequence[uuid.UUID], source_type: str | None = None
) -> list[SourceSummary]:
    """The sources of these spaces with chunk counts and who added them, newest first."""
    users = User.__table__
    last_added_by = sa.func.array_agg(
        aggregate_order_by(_table.c.added_by, _table.c.updated_at.desc())
    )[1]
    sources = (
        sa.select(
            _table.c.space_id,
            _table.c.source_type,
            _table.c.source_id,
            sa.func.max(_table.c.metadata["title"].astext).label("title"),
            sa.func.max(_table.c.source_url).label("source_url"),
            sa.func.count().label("chunks"),
            sa.func.max(_table.c.updated_at).label("updated_at"),
            last_added_by.label("added_by_id"),
        )
        .where(_table.c.space_id.in_(list(space_ids)))
        .group_by(_table.c.space_id, _table.c.source_type, _table.c.source_id)
    )
    if source_type:
        sources = sources.where(_table.c.source_type == source_type)
    found = sources.subquery()
    query = (
        sa.select(
            *(c for c in found.c if c.name != "added_by_id"),
            users.c.identifier.label("added_by"),
        )
        .outerjoin(users, users.c.id == found.c.added_by_id)
        .order_by(found.c.updated_at.desc())
    )
    return [SourceSummary(**row._mapping) for row in connection.execute(query)]
