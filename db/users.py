"""User repository: keyword-only functions that take the session explicitly."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from db.errors import InvalidInput, NotFound
from db.models import User
from db.passwords import hash_password, needs_rehash, verify_password
from db.spaces import create_personal_space

__all__ = [
    "add_user",
    "authenticate",
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
    user = require_user(session=session, identifier=identifier)
    user.is_active = active
    user.updated_at = sa.func.now()
    session.flush()
    return user


def set_password(*, session: Session, identifier: str, password: str) -> User:
    _check_password(password)
    user = require_user(session=session, identifier=identifier)
    user.password_hash = hash_password(password)
    user.updated_at = sa.func.now()
    session.flush()
    return user


def authenticate(*, session: Session, identifier: str, password: str) -> User | None:
    """The active user whose password matches, else None. Upgrades old hashes."""
    user = get_user(session=session, identifier=identifier)
    if user is None or not user.is_active or not verify_password(password, user.password_hash):
        return None
    if user.password_hash and needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        session.flush()
    return user
