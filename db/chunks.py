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
    "CentralChunk",
    "ChunkKey",
    "ChunkRow",
    "SourceKey",
    "SourceSummary",
    "central_chunks",
    "chunk_texts",
    "delete_chunks",
    "delete_source",
    "insert_chunks",
    "list_sources",
]

#: (space_id, source_type, source_id, chunk_index): where a chunk sits in its source.
ChunkKey = tuple[uuid.UUID, str, str, int]

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
    created_at: datetime | None = None
    pages: int | None = None  # known for PDFs


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


# The page count the PDF loader records, else the highest page cited; non-numeric -> NULL.
_pages = sa.func.coalesce(
    sa.cast(
        sa.func.nullif(
            sa.func.regexp_replace(_table.c.metadata["pages"].astext, r"\D", "", "g"), ""
        ),
        sa.Integer,
    ),
    sa.cast(
        sa.func.nullif(
            sa.func.regexp_replace(_table.c.metadata["page"].astext, r"\D", "", "g"), ""
        ),
        sa.Integer,
    ),
)


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
            sa.func.min(_table.c.created_at).label("created_at"),
            sa.func.max(_pages).label("pages"),
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


def chunk_texts(connection: Connection, *, keys: Sequence[ChunkKey]) -> dict[ChunkKey, str]:
    """The text of the chunks at `keys` (those that exist and row-level security lets
    the connection's user read), e.g. a passage's neighbours, so a sentence cut by a
    chunk boundary can be quoted whole. Each key names its space: a neighbour is
    only ever taken from the passage's own space."""
    if not keys:
        return {}
    position = sa.tuple_(
        _table.c.space_id, _table.c.source_type, _table.c.source_id, _table.c.chunk_index
    )
    unique = list(dict.fromkeys(keys))
    rows = connection.execute(
        sa.select(
            _table.c.space_id,
            _table.c.source_type,
            _table.c.source_id,
            _table.c.chunk_index,
            _table.c.text,
        ).where(_table.c.space_id.in_(sorted({k[0] for k in unique})), position.in_(unique))
    )
    return {(r.space_id, r.source_type, r.source_id, r.chunk_index): r.text for r in rows}


#: (space_id, source_type, source_id): one source of one space.
SourceKey = tuple[uuid.UUID, str, str]


@dataclass(frozen=True)
class CentralChunk:
    """A chunk close to the centre (mean embedding) of its source: what the source is
    mostly about. `centroid` is that mean, the same for every chunk of a source."""

    chunk_id: str
    text: str
    space_id: uuid.UUID
    source_type: str
    source_id: str
    source_url: str | None
    chunk_index: int
    metadata: dict[str, Any]
    similarity: float  # cosine similarity to the centroid
    centroid: list[float]


# pgvector's avg() over a source's vectors, then its nearest chunks (an exact scan of
# that source's rows: the HNSW index is built for one query vector over everything).
_CENTRAL = sa.text(
    """
    WITH centroids AS MATERIALIZED (
        SELECT space_id, source_type, source_id, avg(embedding) AS centroid
        FROM document_chunks
        WHERE space_id = ANY(CAST(:space_ids AS uuid[])) AND source_id = ANY(:source_ids)
        GROUP BY space_id, source_type, source_id
    )
    SELECT c.space_id, c.source_type, c.source_id, CAST(c.centroid AS text) AS centroid,
           d.chunk_id, d.text, d.metadata, d.source_url, d.chunk_index, d.similarity
    FROM centroids AS c
    CROSS JOIN LATERAL (
        SELECT x.chunk_id, x.text, x.metadata, x.source_url, x.chunk_index,
               1 - (x.embedding <=> c.centroid) AS similarity
        FROM document_chunks AS x
        WHERE x.space_id = c.space_id AND x.source_type = c.source_type
          AND x.source_id = c.source_id
        ORDER BY (x.embedding <=> c.centroid) + 0, x.chunk_index
        LIMIT :per_source
    ) AS d
    ORDER BY c.space_id, c.source_type, c.source_id, d.similarity DESC
    """
)


def central_chunks(
    connection: Connection,
    *,
    sources: Sequence[SourceKey],
    per_source: int = 2,
) -> list[CentralChunk]:
    """The `per_source` chunks nearest the centre of each `(space_id, source_type,
    source_id)`. Run it in the reader's scope: row-level security admits members only."""
    if not sources:
        return []
    wanted = set(sources)
    rows = connection.execute(
        _CENTRAL,
        {
            "space_ids": sorted({space_id for space_id, _, _ in wanted}),
            "source_ids": sorted({source_id for _, _, source_id in wanted}),
            "per_source": per_source,
        },
    ).mappings()
    chunks = []
    for row in rows:
        if (row["space_id"], row["source_type"], row["source_id"]) not in wanted:
            continue
        chunks.append(
            CentralChunk(
                chunk_id=row["chunk_id"],
                text=row["text"],
                space_id=row["space_id"],
                source_type=row["source_type"],
                source_id=row["source_id"],
                source_url=row["source_url"],
                chunk_index=int(row["chunk_index"]),
                metadata=dict(row["metadata"] or {}),
                similarity=float(row["similarity"]),
                centroid=[float(v) for v in row["centroid"].strip("[]").split(",")],
            )
        )
    return chunks
