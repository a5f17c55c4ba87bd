"""User-scoped transactions: row-level security keyed by `app.user_id`.

Every query on user-owned tables runs inside `user_scope(engine, user_id)`: the
transaction switches to the role `kb_scoped` (which superusers and owners do not
bypass) and sets `app.user_id`, so PostgreSQL hides other users' rows even from a
query that forgot its WHERE clause. The SQL filters by user as well.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import Session

__all__ = ["SCOPED_ROLE", "async_user_scope", "rls_enforced", "user_scope", "user_session"]

SCOPED_ROLE = "kb_scoped"
_ROLE_CHECK = sa.text("SELECT pg_has_role(current_user, :role, 'MEMBER')")
_role_usable: dict[str, bool] = {}


def _can_use_role(connection: Connection) -> bool:
    key = connection.engine.url.render_as_string(hide_password=True)
    if key not in _role_usable:
        exists = connection.execute(
            sa.text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": SCOPED_ROLE}
        ).scalar()
        _role_usable[key] = bool(
            exists and connection.execute(_ROLE_CHECK, {"role": SCOPED_ROLE}).scalar()
        )
    return _role_usable[key]


def apply_scope(connection: Connection, user_id: uuid.UUID | str) -> None:
    """Inside an open transaction: become `kb_scoped` and set `app.user_id`."""
    if _can_use_role(connection):
        connection.execute(sa.text(f"SET LOCAL ROLE {SCOPED_ROLE}"))
    connection.execute(
        sa.text("SELECT set_config('app.user_id', :uid, true)"), {"uid": str(user_id)}
    )


def rls_enforced(engine: Engine) -> bool:
    """Whether scoped transactions really run under row-level security here."""
    with engine.connect() as connection:
        return _can_use_role(connection)


@contextmanager
def user_scope(engine: Engine, user_id: uuid.UUID | str) -> Iterator[Connection]:
    """A connection in a transaction that sees only `user_id`'s rows; commits on success."""
    with engine.begin() as connection:
        apply_scope(connection, user_id)
        yield connection


@contextmanager
def user_session(engine: Engine, user_id: uuid.UUID | str) -> Iterator[Session]:
    """An ORM session on a user-scoped transaction; commits on success."""
    with (
        user_scope(engine, user_id) as connection,
        Session(bind=connection, join_transaction_mode="create_savepoint") as session,
    ):
        yield session
        session.flush()


@asynccontextmanager
async def async_user_scope(
    engine: AsyncEngine, user_id: uuid.UUID | str
) -> AsyncIterator[AsyncConnection]:
    """The asyncio twin of `user_scope`."""
    async with engine.begin() as connection:
        await connection.run_sync(apply_scope, user_id)
        yield connection
