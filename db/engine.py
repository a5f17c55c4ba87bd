"""Engines: URL normalisation, pooled sync/async engines, actionable connection errors."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from db.errors import DatabaseUnavailable

__all__ = [
    "PoolConfig",
    "check_connection",
    "explain_connection_error",
    "make_async_engine",
    "make_engine",
    "mask_url",
    "normalize_url",
]


@dataclass(frozen=True)
class PoolConfig:
    """Pool settings (the seed's defaults)."""

    pool_size: int = 20
    max_overflow: int = 30
    pool_pre_ping: bool = True
    pool_recycle: int = 300


def normalize_url(url: str) -> str:
    """Any PostgreSQL URL -> the psycopg 3 driver (`postgresql+psycopg://`)."""
    parsed = make_url(url)
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        raise DatabaseUnavailable(
            f"Unsupported database URL scheme {parsed.drivername!r}.",
            hint="Use postgresql://user:password@host:5432/dbname.",
        )
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def mask_url(url: str | URL) -> str:
    """The URL with its password replaced by ***."""
    parsed = make_url(url) if isinstance(url, str) else url
    return parsed.render_as_string(hide_password=True)


def make_engine(url: str, pool: PoolConfig | None = None, **kwargs: object) -> Engine:
    """A pooled synchronous engine on psycopg 3."""
    pool = pool or PoolConfig()
    return sa.create_engine(
        normalize_url(url),
        pool_size=pool.pool_size,
        max_overflow=pool.max_overflow,
        pool_pre_ping=pool.pool_pre_ping,
        pool_recycle=pool.pool_recycle,
        **kwargs,
    )


def make_async_engine(url: str, pool: PoolConfig | None = None) -> AsyncEngine:
    """A pooled asyncio engine on psycopg 3."""
    pool = pool or PoolConfig()
    return create_async_engine(
        normalize_url(url),
        pool_size=pool.pool_size,
        max_overflow=pool.max_overflow,
        pool_pre_ping=pool.pool_pre_ping,
        pool_recycle=pool.pool_recycle,
    )


def explain_connection_error(url: str, error: BaseException) -> DatabaseUnavailable:
    """Turn a driver error into one line that says what happened and what to do."""
    text = str(getattr(error, "orig", None) or error)
    where = mask_url(url)
    lowered = text.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return DatabaseUnavailable(
            f"PostgreSQL refused the login for {where}: wrong user name or password.",
            hint="Fix the credentials in DATABASE_URL.",
        )
    if "does not exist" in lowered and "database" in lowered:
        name = make_url(url).database
        return DatabaseUnavailable(
            f"Database {name!r} does not exist on {where}.",
            hint=f"Create it (createdb {name}) or fix the name in DATABASE_URL.",
        )
    if (
        "connection refused" in lowered
        or "could not connect" in lowered
        or "no such file" in lowered
        or "timeout" in lowered
        or "name or service not known" in lowered
    ):
        return DatabaseUnavailable(
            f"Cannot reach PostgreSQL at {where}: the server is down or unreachable.",
            hint="Start the server or fix host/port in DATABASE_URL "
            "(unset DATABASE_URL to use the embedded database).",
        )
    first_line = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return DatabaseUnavailable(f"Cannot use PostgreSQL at {where}: {first_line}")


def check_connection(engine: Engine) -> str:
    """Connect once; return the server version or raise DatabaseUnavailable."""
    try:
        with engine.connect() as conn:
            return str(conn.execute(sa.text("SHOW server_version")).scalar_one())
    except OperationalError as exc:
        raise explain_connection_error(
            engine.url.render_as_string(hide_password=False), exc
        ) from None
