"""User-scoped database access: row-level security keyed by `app.user_id`.

Two forms, one rule. Writes and repository reads run inside `user_scope(engine,
user_id)`: the transaction switches to the role `kb_scoped` (which superusers and
owners do not bypass) and sets `app.user_id`, so PostgreSQL hides other users' rows
even from a query that forgot its WHERE clause.

Searches run on the read engine (`make_read_engine`), an async engine whose
connections take the scope of the current `read_scope(...)` when they are checked
out of the pool and drop it when they are checked in. langchain-postgres's
`PGVectorStore` opens its own connections, so the scope cannot be a transaction of
ours; a context variable reaches its checkouts instead. A connection checked out
with no scope set sees no user's rows. The SQL filters by user as well.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import Session

from db.engine import PoolConfig, make_async_engine

__all__ = [
    "SCOPED_ROLE",
    "ReadScope",
    "apply_scope",
    "async_user_scope",
    "current_read_scope",
    "make_read_engine",
    "read_scope",
    "rls_enforced",
    "user_scope",
    "user_session",
]

SCOPED_ROLE = "kb_scoped"
_ROLE_USABLE = sa.text(
    "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :role)"
    " AND pg_has_role(current_user, :role, 'MEMBER')"
)
# `SET LOCAL ROLE` takes no bind parameter; set_config('role', ...) is its twin.
_SET_LOCAL_SCOPE = sa.text(
    "SELECT set_config('role', :role, true), set_config('app.user_id', :uid, true)"
)
_SET_LOCAL_USER = sa.text("SELECT set_config('app.user_id', :uid, true)")
_role_usable: dict[str, bool] = {}


def _can_use_role(connection: Connection) -> bool:
    key = connection.engine.url.render_as_string(hide_password=True)
    if key not in _role_usable:
        _role_usable[key] = bool(connection.execute(_ROLE_USABLE, {"role": SCOPED_ROLE}).scalar())
    return _role_usable[key]


def apply_scope(connection: Connection, user_id: uuid.UUID | str) -> None:
    """Inside an open transaction: become `kb_scoped` and set `app.user_id`."""
    if _can_use_role(connection):
        connection.execute(_SET_LOCAL_SCOPE, {"role": SCOPED_ROLE, "uid": str(user_id)})
    else:
        connection.execute(_SET_LOCAL_USER, {"uid": str(user_id)})


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
        # Releases the session's savepoint (closing would roll it back); the scope's
        # transaction then commits.
        session.commit()


@asynccontextmanager
async def async_user_scope(
    engine: AsyncEngine, user_id: uuid.UUID | str
) -> AsyncIterator[AsyncConnection]:
    """The asyncio twin of `user_scope`."""
    async with engine.begin() as connection:
        await connection.run_sync(apply_scope, user_id)
        yield connection


@dataclass(frozen=True)
class ReadScope:
    """Whose rows a search may see, how far its HNSW scan may look, and whether it must
    scan exactly instead (no index scans: a small readable set is read through the
    space index and sorted, which finds the true nearest neighbours)."""

    user_id: uuid.UUID
    ef_search: int = 100
    exact: bool = False


_current: ContextVar[ReadScope | None] = ContextVar("kb_read_scope", default=None)


def current_read_scope() -> ReadScope | None:
    return _current.get()


@contextmanager
def read_scope(scope: ReadScope) -> Iterator[None]:
    """Connections of the read engine checked out inside this block take `scope`."""
    token = _current.set(scope)
    try:
        yield
    finally:
        _current.reset(token)


# Session-level settings (not LOCAL): the store runs its own transactions after the
# checkout. pgvector's iterative scan keeps walking the HNSW graph until enough rows
# pass the user filter; without it a filtered scan silently returns ~4 rows of 10.
_CHECKOUT = (
    "SELECT set_config('role', %s, false), set_config('app.user_id', %s, false),"
    " set_config('hnsw.iterative_scan', 'relaxed_order', false),"
    " set_config('hnsw.ef_search', %s, false), set_config('enable_indexscan', %s, false)"
)
_CHECKIN = "SELECT set_config('role', 'none', false), set_config('app.user_id', '', false)"


def _execute_now(dbapi_connection: Any, statement: str, params: tuple[str, ...] = ()) -> None:
    """Run `statement` in its own committed transaction: one round trip.

    Committed at once, because a session-level setting made in a transaction that is
    later rolled back (the pool's reset does exactly that) would be undone with it.
    Between transactions (the pool checks connections in and out there) autocommit
    sends the statement alone; the BEGIN, statement, COMMIT of a plain transaction
    tripled the round trips of every search's checkout and checkin.
    """
    idle = not dbapi_connection.autocommit and (
        dbapi_connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    )
    if idle:
        dbapi_connection.autocommit = True
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(statement, params)
        finally:
            cursor.close()
    finally:
        if idle:
            dbapi_connection.autocommit = False
    if not idle:
        dbapi_connection.commit()


def make_read_engine(url: str, pool: PoolConfig | None = None) -> AsyncEngine:
    """An async engine whose connections are scoped by `read_scope` at checkout.

    On a server where the role `kb_scoped` cannot be used (a managed server that
    refused CREATEROLE), the role stays the login role and the SQL filters are the
    only guard, as in `user_scope`.
    """
    # The checkout's own statement is the ping: a connection that fails it is discarded
    # and another checked out (below), so the pool's pre-ping would be a second one.
    engine = make_async_engine(url, replace(pool or PoolConfig(), pool_pre_ping=False))
    role_usable: list[bool] = []

    def on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if not role_usable:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(
                    "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %s)"
                    " AND pg_has_role(current_user, %s, 'MEMBER')",
                    (SCOPED_ROLE, SCOPED_ROLE),
                )
                role_usable.append(bool(cursor.fetchone()[0]))
            finally:
                cursor.close()
        scope = _current.get()
        role = SCOPED_ROLE if role_usable[0] else "none"
        user = str(scope.user_id) if scope else ""
        ef_search = str(min(scope.ef_search if scope else 100, 1000))
        index_scans = "off" if scope and scope.exact else "on"
        try:
            _execute_now(dbapi_connection, _CHECKOUT, (role, user, ef_search, index_scans))
        except psycopg.OperationalError as exc:
            # The pool then discards this connection and checks out another.
            raise sa.exc.DisconnectionError(str(exc)) from exc

    def on_checkin(dbapi_connection: Any, record: Any) -> None:
        if dbapi_connection is None:  # the connection was invalidated
            return
        try:
            _execute_now(dbapi_connection, _CHECKIN)
        except psycopg.Error as exc:
            # A connection whose scope cannot be dropped must not be reused.
            record.invalidate(exc)

    sa.event.listen(engine.sync_engine, "checkout", on_checkout)
    sa.event.listen(engine.sync_engine, "checkin", on_checkin)
    return engine
