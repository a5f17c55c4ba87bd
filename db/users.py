"""User repository: keyword-only functions that take the session explicitly."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from db.errors import InvalidInput, NotFound
from db.login_sessions import revoke_user_sessions
from db.models import Element, StoredFile, Thread, User
from db.passwords import hash_password, needs_rehash, verify_password
from db.spaces import create_personal_space, sole_owner_of

__all__ = [
    "DeletedUser",
    "LoginCheck",
    "add_user",
    "authenticate",
    "check_login",
    "delete_user",
    "get_user",
    "list_users",
    "normalize_identifier",
    "require_user",
    "set_active",
    "set_password",
]

MIN_PASSWORD_LENGTH = 8


def normalize_identifier(identifier: str) -> str:
    """Logins are case-insensitive: stored trimmed and lower-case."""
    value = identifier.strip().lower()
    if not value:
        raise InvalidInput("A user name or email is required.")
    return value


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"Passwords need at least {MIN_PASSWORD_LENGTH} characters.")


def add_user(
    *,
    session: Session,
    identifier: str,
    password: str | None = None,
    password_hash: str | None = None,
    display_name: str | None = None,
    email: str | None = None,
    is_admin: bool = False,
    user_id: uuid.UUID | None = None,
) -> User:
    """Create a user and their personal space; `password_hash` takes an existing (e.g.
    bcrypt) hash as it is."""
    ident = normalize_identifier(identifier)
    if get_user(session=session, identifier=ident) is not None:
        raise InvalidInput(f"User {ident!r} already exists.", hint="Pick another name.")
    if password is not None:
        _check_password(password)
        password_hash = hash_password(password)
    if email is None and "@" in ident:
        email = ident
    user = User(
        id=user_id or uuid.uuid4(),
        identifier=ident,
        metadata_={},
        createdAt=datetime.now(UTC).isoformat(),
        email=email.lower() if email else None,
        password_hash=password_hash,
        display_name=display_name,
        is_admin=is_admin,
    )
    session.add(user)
    session.flush()
    create_personal_space(session=session, user=user)
    return user


def get_user(
    *, session: Session, identifier: str | None = None, user_id: uuid.UUID | None = None
) -> User | None:
    if user_id is not None:
        return session.get(User, user_id)
    if identifier is None:
        raise ValueError("identifier or user_id is required")
    ident = identifier.strip().lower()
    return session.scalars(
        sa.select(User).where(sa.or_(User.identifier == ident, sa.func.lower(User.email) == ident))
    ).first()


def require_user(*, session: Session, identifier: str) -> User:
    user = get_user(session=session, identifier=identifier)
    if user is None:
        raise NotFound(
            f"No user {identifier!r}.",
            hint="List users with `kb users list`; add one with `kb users add`.",
        )
    return user


def list_users(*, session: Session) -> list[User]:
    return list(session.scalars(sa.select(User).order_by(User.identifier)))


def set_active(*, session: Session, identifier: str, active: bool) -> User:
    """Enable or disable a login; disabling also ends the user's open sessions."""
    user = require_user(session=session, identifier=identifier)
    user.is_active = active
    user.updated_at = sa.func.now()
    if not active:
        revoke_user_sessions(session=session, user_id=user.id)
    session.flush()
    return user


def set_password(*, session: Session, identifier: str, password: str) -> User:
    """Replace the password and end every open session (a stolen cookie dies with it)."""
    _check_password(password)
    user = require_user(session=session, identifier=identifier)
    user.password_hash = hash_password(password)
    user.updated_at = sa.func.now()
    revoke_user_sessions(session=session, user_id=user.id)
    session.flush()
    return user


@dataclass(frozen=True)
class DeletedUser:
    identifier: str
    chats: int
    attachments: int


def delete_user(*, session: Session, identifier: str) -> DeletedUser:
    """Delete a user and everything that is theirs (chats, attachments, sessions, their
    personal space with its documents and Notion state, usage logs: the foreign keys
    cascade). What they added to shared spaces stays there. Refused while they are the
    last owner of a shared space: that space would have nobody to manage it."""
    user = require_user(session=session, identifier=identifier)
    orphaned = sole_owner_of(session=session, user_id=user.id)
    if orphaned:
        names = ", ".join(repr(name) for name in orphaned)
        raise InvalidInput(
            f"{user.identifier} is the last owner of {names}.",
            hint="Make someone else an owner first (kb spaces set-role), or delete the space.",
        )
    thread_ids = sa.select(Thread.id).where(Thread.userId == user.id)
    # Attachments stored before their owner was recorded have a NULL user_id: find
    # them through the user's chats, which is how ownership is checked when serving.
    keys = sa.select(Element.objectKey).where(
        Element.threadId.in_(thread_ids), Element.objectKey.is_not(None)
    )
    chats = session.scalar(sa.select(sa.func.count()).select_from(thread_ids.subquery())) or 0
    files = session.execute(
        sa.delete(StoredFile).where(
            sa.or_(StoredFile.user_id == user.id, StoredFile.object_key.in_(keys))
        )
    )
    session.delete(user)
    session.flush()
    return DeletedUser(
        identifier=user.identifier,
        chats=int(chats),
        attachments=int(files.rowcount),  # type: ignore[attr-defined]
    )


RefusalReason = Literal["unknown login", "disabled", "wrong password"]


@dataclass(frozen=True)
class LoginCheck:
    """The outcome of a password check: the user, or why there is none."""

    user: User | None
    refusal: RefusalReason | None = None


@cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def check_login(*, session: Session, identifier: str, password: str) -> LoginCheck:
    """Check a login and password, spending the same hashing work whether or not the
    login exists or is enabled (no probing of login names by timing). Upgrades old
    hashes of successful logins."""
    user = get_user(session=session, identifier=identifier)
    stored = user.password_hash if user is not None and user.password_hash else _dummy_hash()
    matches = verify_password(password, stored)
    if user is None:
        return LoginCheck(None, "unknown login")
    if not matches or not user.password_hash:
        return LoginCheck(None, "wrong password")
    if not user.is_active:
        return LoginCheck(None, "disabled")
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        session.flush()
    return LoginCheck(user)


def authenticate(*, session: Session, identifier: str, password: str) -> User | None:
    """The active user whose password matches, else None. Upgrades old hashes."""
    return check_login(session=session, identifier=identifier, password=password).user
