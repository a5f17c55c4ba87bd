"""Password login against the `users` table (argon2 hashes; disabled users refused).

The app registers Chainlit's callbacks with its engine; the checks are plain
functions of an engine so tests call them directly. OAuth is Chainlit's own: the app
registers `oauth_login` when a provider's environment variables are set; it admits
existing, enabled accounts only.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import chainlit as cl
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from db.models import User
from db.users import authenticate, get_user

__all__ = ["active_account", "check_password", "oauth_login", "password_login", "user_id_of"]

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
        return _chainlit_user(user, "credentials")


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


async def password_login(engine: Engine, username: str, password: str) -> cl.User | None:
    """Chainlit's password callback, given the app's engine."""
    return await asyncio.to_thread(check_password, engine, username, password)


async def oauth_login(engine: Engine, provider_id: str, default_user: cl.User) -> cl.User | None:
    """Chainlit's OAuth callback, given the app's engine: the provider's login must
    name an enabled account (matched by login or email)."""
    identifier = default_user.identifier.strip().lower()
    user = await asyncio.to_thread(active_account, engine, identifier, provider_id)
    if user is None:
        log.info("refused an OAuth login from %s: no enabled account", provider_id)
    return user
