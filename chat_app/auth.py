"""Password login against the `users` table (argon2 hashes; disabled users refused).

Chainlit calls `password_auth_callback`; the check itself is a plain function of
an engine so tests call it directly. OAuth and header auth are Chainlit's own
(`@cl.oauth_callback`, `@cl.header_auth_callback` plus its environment variables);
`ensure_active` lets those callbacks refuse accounts an admin disabled.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import chainlit as cl
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from db.users import authenticate, get_user

__all__ = ["check_password", "ensure_active", "password_auth_callback", "user_id_of"]

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


def ensure_active(engine: Engine, identifier: str) -> bool:
    """False when an account with this login exists and is disabled (for OAuth/header auth)."""
    with Session(engine) as session:
        user = get_user(session=session, identifier=identifier)
        return user is None or user.is_active


def user_id_of(user: cl.User | cl.PersistedUser | None) -> uuid.UUID:
    """Our `users.id` for the logged-in Chainlit user."""
    if user is None:
        raise PermissionError("Not logged in.")
    value = user.metadata.get("kb_user_id") or getattr(user, "id", None)
    if not value:
        raise PermissionError(f"User {user.identifier!r} has no account id.")
    return uuid.UUID(str(value))


async def password_auth_callback(username: str, password: str) -> cl.User | None:
    from chat_app.services import get_services

    engine = (await asyncio.to_thread(get_services)).engine
    return await asyncio.to_thread(check_password, engine, username, password)
