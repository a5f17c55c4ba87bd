"""Sessions that end: the signed cookie names a `login_sessions` row, checked per request.

Chainlit signs a JWT with the user its login callback returns (metadata included)
and trusts it until it expires. kb puts the id of a fresh `login_sessions` row in
that metadata at login, and `SessionGate.verify` admits a token only while its row
is open, unexpired and its user enabled: logout, `kb users disable`,
`kb users set-password` and `kb users delete` end sessions at their next request.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta

import chainlit as cl
import jwt
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session

from db.login_sessions import revoke_session, session_is_active, start_session

__all__ = [
    "SESSION_KEY",
    "SessionClaims",
    "SessionGate",
    "acting_user_id",
    "current_session",
    "read_claims",
]

#: The metadata key (inside Chainlit's JWT) holding the `login_sessions` id.
SESSION_KEY = "kb_session"

_USER_KEY = "kb_user_id"


@dataclass(frozen=True)
class SessionClaims:
    """What a valid token says: which session, which account."""

    session_id: uuid.UUID
    user_id: uuid.UUID
    identifier: str


#: The verified session of the request (or websocket) being served, set by the
#: security middleware; the data layer reads it to check ownership.
current_session: ContextVar[SessionClaims | None] = ContextVar("kb_current_session", default=None)


def acting_user_id() -> uuid.UUID | None:
    claims = current_session.get()
    return claims.user_id if claims is not None else None


def read_claims(token: str, secret: str) -> SessionClaims | None:
    """The claims of a well-signed, unexpired token that names a session, else None
    (tokens without a session id predate ending sessions and are not accepted)."""
    try:
        payload = jwt.decode(token, secret, algorithms=["HS256"])
    except jwt.InvalidTokenError:
        return None
    metadata = payload.get("metadata")
    if not isinstance(metadata, Mapping):
        return None
    try:
        return SessionClaims(
            session_id=uuid.UUID(str(metadata[SESSION_KEY])),
            user_id=uuid.UUID(str(metadata[_USER_KEY])),
            identifier=str(payload.get("identifier") or ""),
        )
    except (KeyError, ValueError):
        return None


class SessionGate:
    """Starts sessions at login, verifies them per request, ends them at logout."""

    def __init__(
        self, *, engine: Engine, check_engine: AsyncEngine, secret: str, lifetime: timedelta
    ) -> None:
        self._engine = engine
        self._check_engine = check_engine
        self._secret = secret
        self.lifetime = lifetime

    def start(self, user: cl.User, *, provider: str, client_address: str | None) -> cl.User:
        """Record a new session for `user` (ours: metadata has kb_user_id) and return
        the user carrying its id, which Chainlit then signs into the cookie."""
        user_id = uuid.UUID(str(user.metadata[_USER_KEY]))
        with Session(self._engine) as session:
            session_id = start_session(
                session=session,
                user_id=user_id,
                lifetime=self.lifetime,
                provider=provider,
                client_address=client_address,
            )
            session.commit()
        user.metadata = {**user.metadata, SESSION_KEY: str(session_id)}
        return user

    def claims(self, token: str) -> SessionClaims | None:
        return read_claims(token, self._secret)

    async def is_open(self, claims: SessionClaims) -> bool:
        """The session is neither ended nor expired and its user is enabled. Database
        errors propagate (the caller tells an outage from a refusal)."""
        async with self._check_engine.connect() as conn:
            return await session_is_active(
                conn, session_id=claims.session_id, user_id=claims.user_id
            )

    async def verify(self, token: str) -> SessionClaims | None:
        """The claims when the token's session is still open, else None."""
        claims = self.claims(token)
        return claims if claims is not None and await self.is_open(claims) else None

    def end(self, token: str) -> bool:
        """Logout: end the token's session (False when there was none open)."""
        claims = self.claims(token)
        if claims is None:
            return False
        with Session(self._engine) as session:
            ended = revoke_session(session=session, session_id=claims.session_id)
            session.commit()
        return ended
