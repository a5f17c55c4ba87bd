"""Login sessions: started at login, checked on every request, ended by logout or by
whatever makes a user's existing sessions void (disabled, password changed, deleted).

Keyword-only repository functions that take the session or connection explicitly.
The web app checks with `session_is_active` (async, one indexed lookup per request).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Session

from db.models import LoginSession, User

__all__ = [
    "active_session_query",
    "revoke_session",
    "revoke_user_sessions",
    "session_is_active",
    "start_session",
]


def start_session(
    *,
    session: Session,
    user_id: uuid.UUID,
    lifetime: timedelta,
    provider: str = "credentials",
    client_address: str | None = None,
) -> uuid.UUID:
    """A new session row for `user_id`, valid for `lifetime`; the user's dead rows go."""
    session.execute(
        sa.delete(LoginSession).where(
            LoginSession.user_id == user_id,
            sa.or_(LoginSession.expires_at < sa.func.now(), LoginSession.revoked_at.is_not(None)),
        )
    )
    session_id = uuid.uuid4()
    session.execute(
        sa.insert(LoginSession).values(
            id=session_id,
            user_id=user_id,
            provider=provider,
            client_address=client_address,
            expires_at=sa.func.now() + lifetime,
        )
    )
    return session_id


def revoke_session(*, session: Session, session_id: uuid.UUID) -> bool:
    """End one session (logout); False when it was already over."""
    result = session.execute(
        sa.update(LoginSession)
        .where(LoginSession.id == session_id, LoginSession.revoked_at.is_(None))
        .values(revoked_at=sa.func.now())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def revoke_user_sessions(*, session: Session, user_id: uuid.UUID) -> int:
    """End every open session of a user; returns how many were open."""
    result = session.execute(
        sa.update(LoginSession)
        .where(LoginSession.user_id == user_id, LoginSession.revoked_at.is_(None))
        .values(revoked_at=sa.func.now())
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def active_session_query(session_id: uuid.UUID, user_id: uuid.UUID) -> sa.Select[Any]:
    """1 when the session is open, unexpired, and belongs to an enabled user."""
    return (
        sa.select(sa.literal(1))
        .select_from(LoginSession)
        .join(User, User.id == LoginSession.user_id)
        .where(
            LoginSession.id == session_id,
            LoginSession.user_id == user_id,
            LoginSession.revoked_at.is_(None),
            LoginSession.expires_at > sa.func.now(),
            User.is_active.is_(True),
        )
    )


async def session_is_active(
    conn: AsyncConnection, *, session_id: uuid.UUID, user_id: uuid.UUID
) -> bool:
    return (await conn.execute(active_session_query(session_id, user_id))).first() is not None
