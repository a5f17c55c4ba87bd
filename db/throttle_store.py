"""A PostgreSQL storage for the `limits` rate-limiting library (table `login_throttle`).

`limits` brings the strategies and storages for memory, Redis, Memcached and
MongoDB, but none for PostgreSQL; kb keeps its state in the one database, so this
adds the fixed-window counter operations `limits.strategies.FixedWindowRateLimiter`
needs. Each increment is one atomic upsert, so several web processes on one
database count together.
"""

from __future__ import annotations

import time
from datetime import timedelta

import sqlalchemy as sa
from limits.storage import Storage
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from db.models import LoginThrottle

__all__ = ["PostgresStorage"]

# Expired counters are deleted by later increments, after this grace period.
_PURGE_AFTER = timedelta(hours=1)


class PostgresStorage(Storage):
    """Fixed-window counters in `login_throttle` (key -> hits until expires_at)."""

    STORAGE_SCHEME = None  # built with an engine, not from a URI

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self.engine = engine

    @property
    def base_exceptions(self) -> type[Exception]:
        return SQLAlchemyError

    def incr(self, key: str, expiry: int | float, amount: int = 1) -> int:
        expires_at = sa.func.now() + timedelta(seconds=float(expiry))
        insert = pg_insert(LoginThrottle).values(key=key, hits=amount, expires_at=expires_at)
        expired = LoginThrottle.expires_at <= sa.func.now()
        statement = insert.on_conflict_do_update(
            index_elements=[LoginThrottle.key],
            set_={
                "hits": sa.case((expired, amount), else_=LoginThrottle.hits + amount),
                "expires_at": sa.case(
                    (expired, insert.excluded.expires_at), else_=LoginThrottle.expires_at
                ),
            },
        ).returning(LoginThrottle.hits)
        with self.engine.begin() as conn:
            hits = conn.execute(statement).scalar_one()
            conn.execute(
                sa.delete(LoginThrottle).where(
                    LoginThrottle.expires_at < sa.func.now() - _PURGE_AFTER
                )
            )
        return int(hits)

    def get(self, key: str) -> int:
        with self.engine.connect() as conn:
            hits = conn.execute(
                sa.select(LoginThrottle.hits).where(
                    LoginThrottle.key == key, LoginThrottle.expires_at > sa.func.now()
                )
            ).scalar()
        return int(hits or 0)

    def get_expiry(self, key: str) -> float:
        with self.engine.connect() as conn:
            expiry = conn.execute(
                sa.select(sa.func.extract("epoch", LoginThrottle.expires_at)).where(
                    LoginThrottle.key == key, LoginThrottle.expires_at > sa.func.now()
                )
            ).scalar()
        return float(expiry) if expiry is not None else time.time()

    def check(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.select(1))
        except SQLAlchemyError:
            return False
        return True

    def reset(self) -> int | None:
        with self.engine.begin() as conn:
            return int(conn.execute(sa.delete(LoginThrottle)).rowcount)

    def clear(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.delete(LoginThrottle).where(LoginThrottle.key == key))
