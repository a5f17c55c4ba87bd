"""Repository for Notion state: the connection, per-page sync state, and sync runs.

Every function takes a connection already inside `db.scoped.user_scope` (row-level
security) and filters by `space_id` in SQL as well.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from db.models import NotionConnection, NotionPage, NotionSync

__all__ = [
    "ConnectionRow",
    "PageState",
    "SyncRow",
    "count_pages",
    "delete_connection",
    "delete_pages",
    "fail_running_syncs",
    "finish_sync",
    "get_connection",
    "last_sync",
    "load_pages",
    "release_sync_lock",
    "save_connection",
    "save_page",
    "save_placeholders",
    "set_parent",
    "start_sync",
    "try_sync_lock",
]

_connections = cast("sa.Table", NotionConnection.__table__)
_pages = cast("sa.Table", NotionPage.__table__)
_syncs = cast("sa.Table", NotionSync.__table__)


@dataclass(frozen=True)
class ConnectionRow:
    token_encrypted: bytes
    workspace_name: str | None
    bot_id: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class PageState:
    """What the last sync recorded about one page (or database container)."""

    page_id: str
    kind: str
    title: str | None
    url: str | None
    parent_id: str | None
    last_edited_time: str | None
    chunk_count: int
    status: str
    error: str | None


@dataclass(frozen=True)
class SyncRow:
    id: int
    status: str
    started_at: datetime
    finished_at: datetime | None
    pages_seen: int
    pages_new: int
    pages_updated: int
    pages_unchanged: int
    pages_removed: int
    pages_failed: int
    chunks_written: int
    error: str | None
    details: dict[str, Any]


def save_connection(
    connection: Connection,
    *,
    space_id: uuid.UUID,
    connected_by: uuid.UUID,
    token_encrypted: bytes,
    workspace_name: str | None,
    bot_id: str | None,
) -> None:
    """Insert or replace the space's connection."""
    stmt = pg_insert(_connections).values(
        space_id=space_id,
        connected_by=connected_by,
        token_encrypted=token_encrypted,
        workspace_name=workspace_name,
        bot_id=bot_id,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["space_id"],
        set_={
            "token_encrypted": stmt.excluded.token_encrypted,
            "connected_by": stmt.excluded.connected_by,
            "workspace_name": stmt.excluded.workspace_name,
            "bot_id": stmt.excluded.bot_id,
            "updated_at": sa.func.now(),
        },
    )
    connection.execute(stmt)


def get_connection(connection: Connection, *, space_id: uuid.UUID) -> ConnectionRow | None:
    row = connection.execute(
        sa.select(
            _connections.c.token_encrypted,
            _connections.c.workspace_name,
            _connections.c.bot_id,
            _connections.c.created_at,
            _connections.c.updated_at,
        ).where(_connections.c.space_id == space_id)
    ).one_or_none()
    return ConnectionRow(**row._mapping) if row else None


def delete_connection(connection: Connection, *, space_id: uuid.UUID) -> bool:
    result = connection.execute(sa.delete(_connections).where(_connections.c.space_id == space_id))
    return bool(result.rowcount)


def load_pages(connection: Connection, *, space_id: uuid.UUID) -> dict[str, PageState]:
    """Every recorded page and database container of the user, by id."""
    rows = connection.execute(
        sa.select(
            _pages.c.page_id,
            _pages.c.kind,
            _pages.c.title,
            _pages.c.url,
            _pages.c.parent_id,
            _pages.c.last_edited_time,
            _pages.c.chunk_count,
            _pages.c.status,
            _pages.c.error,
        ).where(_pages.c.space_id == space_id)
    )
    return {row.page_id: PageState(**row._mapping) for row in rows}


def save_page(
    connection: Connection,
    *,
    space_id: uuid.UUID,
    page_id: str,
    kind: str = "page",
    title: str | None,
    url: str | None,
    parent_id: str | None,
    last_edited_time: str | None,
    chunk_count: int,
    status: str,
    error: str | None = None,
) -> None:
    """Insert or replace one page's sync state."""
    values = {
        "kind": kind,
        "title": title,
        "url": url,
        "parent_id": parent_id,
        "last_edited_time": last_edited_time,
        "chunk_count": chunk_count,
        "status": status,
        "error": error,
    }
    stmt = pg_insert(_pages).values(space_id=space_id, page_id=page_id, **values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["space_id", "page_id"],
        set_={**{k: stmt.excluded[k] for k in values}, "synced_at": sa.func.now()},
    )
    connection.execute(stmt)


def save_placeholders(
    connection: Connection,
    *,
    space_id: uuid.UUID,
    parent_id: str,
    kind: str,
    object_ids: Iterable[str],
) -> None:
    """Record children found in a page as 'pending' unless already recorded.

    A run that stops before reaching them still leaves them findable from their
    parent next time, even when the parent itself is then unchanged.
    """
    rows = [
        {
            "space_id": space_id,
            "page_id": i,
            "kind": kind,
            "parent_id": parent_id,
            "status": "pending",
            "chunk_count": 0,
        }
        for i in object_ids
    ]
    if rows:
        connection.execute(pg_insert(_pages).values(rows).on_conflict_do_nothing())


def set_parent(
    connection: Connection, *, space_id: uuid.UUID, page_id: str, parent_id: str | None
) -> None:
    """Record where a page was found (the container it lives in)."""
    connection.execute(
        sa.update(_pages)
        .where(_pages.c.space_id == space_id, _pages.c.page_id == page_id)
        .values(parent_id=parent_id)
    )


def delete_pages(connection: Connection, *, space_id: uuid.UUID, page_ids: Iterable[str]) -> int:
    ids = list(page_ids)
    if not ids:
        return 0
    result = connection.execute(
        sa.delete(_pages).where(_pages.c.space_id == space_id, _pages.c.page_id.in_(ids))
    )
    return int(result.rowcount or 0)


def count_pages(connection: Connection, *, space_id: uuid.UUID) -> dict[str, int]:
    """Pages by status (database containers are not counted)."""
    rows = connection.execute(
        sa.select(_pages.c.status, sa.func.count())
        .where(_pages.c.space_id == space_id, _pages.c.kind == "page")
        .group_by(_pages.c.status)
    )
    return {status: int(n) for status, n in rows}


def fail_running_syncs(connection: Connection, *, space_id: uuid.UUID, reason: str) -> int:
    """Close runs left 'running' by a process that died, so history stays truthful."""
    result = connection.execute(
        sa.update(_syncs)
        .where(_syncs.c.space_id == space_id, _syncs.c.status == "running")
        .values(status="failed", error=reason, finished_at=sa.func.now())
    )
    return int(result.rowcount or 0)


def start_sync(
    connection: Connection, *, space_id: uuid.UUID, started_by: uuid.UUID | None
) -> tuple[int, datetime]:
    """A new run in status 'running'; returns its id and start time."""
    row = connection.execute(
        sa.insert(_syncs)
        .values(space_id=space_id, started_by=started_by, status="running")
        .returning(_syncs.c.id, _syncs.c.started_at)
    ).one()
    return int(row.id), row.started_at


def finish_sync(
    connection: Connection,
    *,
    space_id: uuid.UUID,
    sync_id: int,
    status: str,
    counts: dict[str, int],
    error: str | None,
    details: dict[str, Any],
) -> datetime:
    """Close a run with its outcome; returns the finish time."""
    row = connection.execute(
        sa.update(_syncs)
        .where(_syncs.c.space_id == space_id, _syncs.c.id == sync_id)
        .values(status=status, error=error, details=details, finished_at=sa.func.now(), **counts)
        .returning(_syncs.c.finished_at)
    ).one()
    finished: datetime = row.finished_at
    return finished


def last_sync(connection: Connection, *, space_id: uuid.UUID) -> SyncRow | None:
    row = connection.execute(
        sa.select(*(_syncs.c[name] for name in SyncRow.__dataclass_fields__))
        .where(_syncs.c.space_id == space_id)
        .order_by(_syncs.c.started_at.desc(), _syncs.c.id.desc())
        .limit(1)
    ).one_or_none()
    return SyncRow(**row._mapping) if row else None


def _lock_key(space_id: uuid.UUID) -> sa.ColumnElement[int]:
    return sa.func.hashtextextended(f"kb-notion-sync/{space_id}", 0)


def try_sync_lock(connection: Connection, *, space_id: uuid.UUID) -> bool:
    """Take the user's session-level sync lock on an AUTOCOMMIT connection, if free."""
    return bool(
        connection.execute(sa.select(sa.func.pg_try_advisory_lock(_lock_key(space_id)))).scalar()
    )


def release_sync_lock(connection: Connection, *, space_id: uuid.UUID) -> None:
    connection.execute(sa.select(sa.func.pg_advisory_unlock(_lock_key(space_id))))
