"""Read-your-writes with streaming replicas: where each person's own writes end.

After a write whose result its author will read next (a file indexed, a source
removed, a chat message stored), `note_writes` records the primary's WAL insert
position for that person in `read_positions`. A replica that has replayed past it
(`pg_last_wal_replay_lsn() >= position`) shows them everything they wrote; until
then their reads go to the primary (`db.replicas.ReadRouter`).

The position is taken in a transaction of its own *after* the write committed, so
it is at or past the write's commit record whatever `synchronous_commit` says (the
insert position, not the flush position, for that reason). The row lives on the
primary and is read there, so every web process and worker shares it. Noting is a
tiny upsert whose own durability does not matter (losing it in a crash costs at
most a stale read bounded by the replica lag limit): it commits asynchronously.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["format_lsn", "note_writes", "note_writes_async", "parse_lsn", "position_of"]

_ASYNC_COMMIT = sa.text("SET LOCAL synchronous_commit = off")
_NOTE = sa.text(
    """
    INSERT INTO read_positions (user_id, lsn, noted_at)
    SELECT person, pg_current_wal_insert_lsn(), now()
    FROM unnest(CAST(:people AS uuid[])) AS person
    WHERE EXISTS (SELECT 1 FROM users WHERE users.id = person)
    ON CONFLICT (user_id) DO UPDATE
        SET lsn = GREATEST(read_positions.lsn, EXCLUDED.lsn), noted_at = EXCLUDED.noted_at
    RETURNING lsn::text
    """
)
_POSITION = sa.text("SELECT lsn::text FROM read_positions WHERE user_id = :person")


def parse_lsn(text: str) -> int:
    """`"16/B374D848"` -> a byte position that compares like PostgreSQL's pg_lsn."""
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def format_lsn(position: int) -> str:
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


def _people(user_ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
    return sorted(set(user_ids))


def note_writes(connection: Connection, user_ids: Iterable[uuid.UUID]) -> int | None:
    """Record that `user_ids` must read at least what the primary holds now; call it in a
    fresh transaction after the writes committed. Returns the position (None: nobody)."""
    people = _people(user_ids)
    if not people:
        return None
    connection.execute(_ASYNC_COMMIT)
    rows = connection.execute(_NOTE, {"people": people}).scalars().all()
    return max((parse_lsn(r) for r in rows), default=None)


async def note_writes_async(
    connection: AsyncConnection, user_ids: Iterable[uuid.UUID]
) -> int | None:
    """The asyncio twin of `note_writes`."""
    people = _people(user_ids)
    if not people:
        return None
    await connection.execute(_ASYNC_COMMIT)
    rows = (await connection.execute(_NOTE, {"people": people})).scalars().all()
    return max((parse_lsn(r) for r in rows), default=None)


async def position_of(connection: AsyncConnection, user_id: uuid.UUID) -> int | None:
    """The position `user_id`'s reads must have replayed, or None (no write noted)."""
    value = (await connection.execute(_POSITION, {"person": user_id})).scalar()
    return parse_lsn(value) if value else None
