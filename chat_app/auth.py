"""Password login against the `users` table (argon2 hashes; disabled users refused),
throttled, logged, and turned into a session that can end.

The checks are plain functions of an engine so tests call them directly;
`PasswordLogin` adds what a login over HTTP needs (throttling per login name and
client address, a refusal log line with both, a `login_sessions` row) and says
"service unavailable" rather than "wrong password" when the database is down.
OAuth is Chainlit's own: the app registers `oauth_login` when a provider's
environment variables are set; it admits existing, enabled accounts only.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import chainlit as cl
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from chat_app.security.outage import SERVICE_UNAVAILABLE, is_outage, monitor
from chat_app.security.sessions import SessionGate
from chat_app.security.throttle import TOO_MANY_ATTEMPTS, LoginThrottle
from db.models import User
from db.users import check_login, get_user

__all__ = [
    "LoginRefused",
    "PasswordLogin",
    "active_account",
    "check_password",
    "oauth_login",
    "user_id_of",
]

log = logging.getLogger("kb.auth")


def check_password(engine: Engine, identifier: str, password: str) -> cl.User | None:
    """The Chainlit user for a correct login of an active account, else None."""
    return _check(engine, identifier, password)[0]


def _check(engine: Engine, identifier: str, password: str) -> tuple[cl.User | None, str]:
    """(user, "") for a correct login, else (None, why) for the log."""
    if not identifier or not password:
        return None, "empty login or password"
    with Session(engine) as session:
        outcome = check_login(session=session, identifier=identifier, password=password)
        if outcome.user is None:
            return None, outcome.refusal or "refused"
        session.commit()  # keeps an upgraded (re-hashed) password
        return _chainlit_user(outcome.user, "credentials"), ""


def active_account(engine: Engine, identifier: str, provider: str) -> cl.User | None:
    """The Chainlit user of an existing, enabled account with this login (or email).

    OAuth and header logins need one: an administrator creates it first
    (`kb users add`), so a valid GitHub or Google account alone is not enough."""
    with Session(engine) as session:
        user = get_user(session=session, identifier=identifier)
        if user is None or not user.is_active:
            return None
        return _chainlit_user(user, provider)


def _chainlit_user(user: User, provider: str) -> cl.User:
    return cl.User(
        identifier=user.identifier,
        display_name=user.display_name or user.identifier,
        metadata={
            "kb_user_id": str(user.id),
            "role": "admin" if user.is_admin else "user",
            "provider": provider,
        },
    )


def user_id_of(user: cl.User | cl.PersistedUser | None) -> uuid.UUID:
    """Our `users.id` for the logged-in Chainlit user."""
    if user is None:
        raise PermissionError("Not logged in.")
    value = user.metadata.get("kb_user_id") or getattr(user, "id", None)
    if not value:
        raise PermissionError(f"User {user.identifier!r} has no account id.")
    return uuid.UUID(str(value))


@dataclass
class LoginRefused(Exception):
    """A login refused for another reason than wrong credentials (HTTP status and
    the sentence saying why)."""

    status: int
    message: str
    retry_after: int | None = None


def _shown(login: str) -> str:
    # repr: a login with a newline cannot forge a second log line.
    return repr(login.strip()[:100])


class PasswordLogin:
    """A password login as the web app runs it (blocking: call it in a thread)."""

    def __init__(
        self,
        *,
        engine: Engine,
        throttle: LoginThrottle,
        sessions: SessionGate,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        self._engine = engine
        self._throttle = throttle
        self._sessions = sessions
        # Told "wrong_credentials" or "throttled" (the metrics count refused logins).
        self._on_refused = on_refused or (lambda _reason: None)

    def __call__(self, login: str, password: str, *, address: str | None) -> cl.User | None:
        """The session's user, None for wrong credentials; raises `LoginRefused` when
        throttled (429) or when the database is unreachable (503)."""
        try:
            wait = self._throttle.retry_after(login, address)
            if wait is not None:
                log.warning(
                    "refused login %s from %s: too many failed attempts (retry in %d s)",
                    _shown(login),
                    address,
                    wait,
                )
                self._on_refused("throttled")
                raise LoginRefused(429, TOO_MANY_ATTEMPTS, retry_after=wait)
            user, why = _check(self._engine, login, password)
            if user is None:
                self._on_refused("wrong_credentials")
                self._throttle.failed(login, address)
                log.warning("refused login %s from %s: %s", _shown(login), address, why)
                return None
            user = self._sessions.start(user, provider="credentials", client_address=address)
        except LoginRefused:
            raise
        except Exception as error:
            if not is_outage(error):
                raise
            monitor.failed(error, during="a login")
            raise LoginRefused(503, SERVICE_UNAVAILABLE, retry_after=5) from None
        monitor.succeeded()
        log.info("login %s from %s", _shown(login), address)
        return user


async def oauth_login(
    engine: Engine,
    provider_id: str,
    default_user: cl.User,
    *,
    sessions: SessionGate | None = None,
    address: str | None = None,
) -> cl.User | None:
    """Chainlit's OAuth callback, given the app's engine: the provider's login must
    name an enabled account (matched by login or email). With `sessions`, the login
    starts a session like a password login does."""
    identifier = default_user.identifier.strip().lower()
    user = await asyncio.to_thread(active_account, engine, identifier, provider_id)
    if user is None:
        log.warning(
            "refused OAuth login %s from %s via %s: no enabled account",
            _shown(identifier),
            address,
            provider_id,
        )
        return None
    if sessions is not None:
        user = await asyncio.to_thread(
            sessions.start, user, provider=provider_id, client_address=address
        )
    return user
