"""Where the migration writes: real transactions, or one transaction rolled back (dry run).

A real run commits each batch on its own (so an interrupted run keeps its
finished batches); user-owned tables are written inside `db.scoped.user_scope`.
A dry run sends the same statements through ONE transaction that is rolled back
at the end, so constraints are checked and nothing is kept.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from db.scoped import apply_scope, user_scope

__all__ = ["Target"]


class Target:
    def __init__(self, engine: Engine, *, dry_run: bool) -> None:
        self.engine = engine
        self.dry_run = dry_run
        self._conn: Connection | None = None

    @contextmanager
    def session(self) -> Iterator[Target]:
        """The whole run; in a dry run, the one transaction that is rolled back."""
        if not self.dry_run:
            yield self
            return
        with self.engine.connect() as conn:
            transaction = conn.begin()
            self._conn = conn
            try:
                yield self
            finally:
                self._conn = None
                transaction.rollback()

    @contextmanager
    def unscoped(self) -> Iterator[Connection]:
        """A batch on tables without row-level security (users, threads, steps)."""
        if self._conn is None:
            with self.engine.begin() as conn:
                yield conn
        else:
            yield self._conn

    @contextmanager
    def scoped(self, user_id: uuid.UUID) -> Iterator[Connection]:
        """A batch of one user's rows on user-owned tables."""
        if self._conn is None:
            with user_scope(self.engine, user_id) as conn:
                yield conn
            return
        conn = self._conn
        apply_scope(conn, user_id)
        try:
            yield conn
        finally:
            # Leave the scope inside the shared transaction: back to our own role.
            conn.execute(sa.text("RESET ROLE"))
            conn.execute(sa.text("SELECT set_config('app.user_id', '', true)"))
