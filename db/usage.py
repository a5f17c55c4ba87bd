"""Repository for `usage_logs`: one row per question asked (and other metered actions)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from db.models import UsageLog

__all__ = ["UsageRow", "list_usage", "log_usage"]

_table = cast(sa.Table, UsageLog.__table__)


@dataclass(frozen=True)
class UsageRow:
    user_id: uuid.UUID
    action: str
    mode: str | None
    k: int | None
    retrieval_ms: float | None
    generation_ms: float | None
    sources_count: int | None
    model: str | None
    tokens_used: int | None
    details: dict[str, Any]
    created_at: datetime


def log_usage(
    *,
    connection: Connection,
    user_id: uuid.UUID,
    action: str,
    mode: str | None = None,
    k: int | None = None,
    retrieval_ms: float | None = None,
    generation_ms: float | None = None,
    sources_count: int | None = None,
    model: str | None = None,
    tokens_used: int | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Write one row; `connection` is inside `db.scoped.user_scope(engine, user_id)`."""
    connection.execute(
        sa.insert(_table).values(
            user_id=user_id,
            action=action,
            mode=mode,
            k=k,
            retrieval_ms=retrieval_ms,
            generation_ms=generation_ms,
            sources_count=sources_count,
            model=model,
            tokens_used=tokens_used,
            details=details or {},
        )
    )


def list_usage(
    *, connection: Connection, user_id: uuid.UUID, action: str | None = None, limit: int = 100
) -> list[UsageRow]:
    """The user's most recent rows, newest first."""
    query = (
        sa.select(
            _table.c.user_id,
            _table.c.action,
            _table.c.mode,
            _table.c.k,
            _table.c.retrieval_ms,
            _table.c.generation_ms,
            _table.c.sources_count,
            _table.c.model,
            _table.c.tokens_used,
            _table.c.details,
            _table.c.created_at,
        )
        .where(_table.c.user_id == user_id)
        .order_by(_table.c.created_at.desc(), _table.c.id.desc())
        .limit(limit)
    )
    if action:
        query = query.where(_table.c.action == action)
    return [UsageRow(**row._mapping) for row in connection.execute(query)]
