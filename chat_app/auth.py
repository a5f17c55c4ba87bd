"""Password login against the `users` table (argon2 hashes; disabled users refused).

Chainlit calls `password_auth_callback`; the check itself is a plain function of
an engine so tests call it directly. OAuth is Chainlit's own: the app registers
`oauth_callback` when a provider's environment variables are set; it admits
existing, enabled accounts only.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import chainlit as cl
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from db.users import authenticate, get_user

__all__ = [
    "account_is_active",
    "check_password",
    "oauth_callback",
    "password_auth_callback",
    "user_id_of",
]

log = logging.getLogger(__name__)


def check_password(engine: Engine, identifier: str, password: str) -> cl.User | None:
    """The Chainlit user for a correct login of an active account, else None."""
    if not identifier or not password:
        return None
    with Session(engine) as session:
        user = authenticate(session=session, identifier=identifier, password=password)
        if user is None:
            # The login name is not logged: it may be a mistyped password.
            log.info("refused a password login")
            return None
        session.commit()  # keeps an upgraded (re-hashed) password
        return cl.User(
            identifier=user.identifier,
            display_name=user.display_name or user.identifier,
            metadata={
                "kb_user_id": str(user.id),
                "role": "admin" if user.is_admin else "user",
                "provider": "credentials",
            },
        )


def account_is_active(engine: Engine, identifier: str) -> bool:
    """An account with this login (or email) exists and is enabled.

    OAuth and header logins need one: an administrator creates it first
    (`kb users add`), so a valid GitHub or Google account alone is not enough."""
    with Session(engine) as session:
        user = get_user(session=session, identifier=identifier)
        return user is not None and user.is_active


def user_id_of(user: cl.User | cl.PersistedUser | None) -> uuid.UUID:
    """Our `users.id` for the logged-in Chainlit user."""
    if user is None:
        raise PermissionError("Not logged in.")
    value = user.metadata.get("kb_user_id") or getattr(user, "id", None)
    if not value:
        raise PermissionError(f"User {user.identifier!r} has no account id.")
    return uuid.UUID(str(value))


async def _engine() -> Engine:
    from chat_app.services import get_services

    return (await asyncio.to_thread(get_services)).engine


async def password_auth_callback(username: str, password: str) -> cl.User | None:
    return await asyncio.to_thread(check_password, await _engine(), username, password)


async def oauth_callback(
    provider_id: str,
    token: str,
    raw_user_data: dict[str, Any],
    default_user: cl.User,
    id_token: str | None = None,
) -> cl.User | None:
    """Active only when a provider is configured (OAUTH_GITHUB_CLIENT_ID...): the
    provider's login must name an enabled account (matched by login or email)."""
    identifier = default_user.identifier.strip().lower()
    if not await asyncio.to_thread(account_is_active, await _engine(), identifier):
        log.info("refused an OAuth login from %s: no enabled account", provider_id)
        return None
    with Session(await _engine()) as session:
        user = get_user(session=session, identifier=identifier)
        assert user is not None
        return cl.User(
            identifier=user.identifier,
            display_name=user.display_name or default_user.display_name or user.identifier,
            metadata={
                "kb_user_id": str(user.id),
                "role": "admin" if user.is_admin else "user",
                "provider": provider_id,
            },
        )
