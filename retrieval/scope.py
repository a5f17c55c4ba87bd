"""Which spaces a search reads, and how big that readable set is.

Resolved once per search on the read engine (inside the user's `ReadScope`, so
row-level security applies here too): the spaces the user is an active member of,
narrowed to the ones asked for, with their names (citations show them) and the
number of chunks they hold, counted only up to a cap. Dense search scans small sets
exactly instead of walking the HNSW graph (see `retrieval.dense`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

__all__ = ["SearchScope", "resolve_scope"]

# Membership is joined with the account, so a disabled person reads nothing; the
# count stops at :cap + 1 rows of the space index (an index-only scan).
_SCOPE = sa.text(
    """
    WITH readable AS MATERIALIZED (
        SELECT s.id, s.name
        FROM spaces AS s
        JOIN space_members AS m ON m.space_id = s.id
        JOIN users AS u ON u.id = m.user_id
        WHERE m.user_id = :user_id AND u.is_active
          AND (CAST(:wanted AS uuid[]) IS NULL OR s.id = ANY(CAST(:wanted AS uuid[])))
    )
    SELECT id, name,
           (SELECT count(*) FROM (
                SELECT 1 FROM document_chunks
                WHERE space_id IN (SELECT id FROM readable)
                LIMIT :cap + 1) AS capped) AS chunks
    FROM readable
    ORDER BY name, id
    """
)


@dataclass(frozen=True)
class SearchScope:
    """The spaces one search reads (id -> name) and their chunk count, up to `cap` + 1."""

    spaces: dict[uuid.UUID, str]
    chunks: int
    cap: int

    @property
    def space_ids(self) -> list[uuid.UUID]:
        return list(self.spaces)

    @property
    def small(self) -> bool:
        """Few enough chunks that an exact scan beats a filtered HNSW walk."""
        return self.chunks <= self.cap


def resolve_scope(
    connection: Connection,
    *,
    user_id: uuid.UUID,
    wanted: Sequence[uuid.UUID] | None,
    cap: int,
) -> SearchScope:
    rows = connection.execute(
        _SCOPE,
        {"user_id": user_id, "wanted": list(wanted) if wanted is not None else None, "cap": cap},
    ).all()
    return SearchScope(
        spaces={row.id: row.name for row in rows},
        chunks=int(rows[0].chunks) if rows else 0,
        cap=cap,
    )
