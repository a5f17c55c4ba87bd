"""Database outages, told honestly: what counts as one, and a log that says so once.

With PostgreSQL unreachable, every request would otherwise fail in its own way
(a wrong-password answer at login, "User not found" in the sidebar, a traceback per
request in the log). Callers ask `is_outage(exc)`, answer "the service is
unavailable, try again shortly", and report to `monitor`, which logs the first
failure of an outage and the recovery, not every refused request.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import exc as sa_exc

from db.errors import DatabaseUnavailable

__all__ = [
    "SERVICE_UNAVAILABLE",
    "OutageMonitor",
    "is_outage",
    "monitor",
]

SERVICE_UNAVAILABLE = "The service is unavailable, try again shortly."

log = logging.getLogger("kb.outage")

# SQLSTATE classes and codes that mean "the server is not there": connection
# exceptions (08...), and the server shutting down or starting up (57P01-57P03).
_DOWN_STATES = ("08", "57P01", "57P02", "57P03")


def _is_down(error: BaseException) -> bool:
    if isinstance(error, DatabaseUnavailable | ConnectionError | sa_exc.TimeoutError):
        return True
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        return error.orig is not None and _is_down(error.orig)
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return False
    if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
        state = getattr(error, "sqlstate", None)
        # No SQLSTATE: the client could not reach or lost the server.
        return state is None or state.startswith(_DOWN_STATES)
    return False


def is_outage(error: BaseException) -> bool:
    """True when `error` (or what caused it) means the database cannot be reached."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if _is_down(current):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _describe(error: BaseException) -> str:
    orig = getattr(error, "orig", None) or error
    text = " ".join(str(orig).split())
    return text[:300] or type(orig).__name__


class OutageMonitor:
    """Remembers whether the database is down; logs transitions, counts the rest."""

    def __init__(self, logger: logging.Logger = log) -> None:
        self._log = logger
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._refused = 0

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def failed(self, error: BaseException, *, during: str) -> None:
        """A request could not reach the database (log only the first of an outage)."""
        with self._lock:
            self._refused += 1
            if self._down_since is not None:
                return
            self._down_since = time.monotonic()
        self._log.error(
            "PostgreSQL is unreachable (%s; first seen during %s): answering 'service "
            "unavailable' until it is back.",
            _describe(error),
            during,
        )

    def succeeded(self) -> None:
        """The database answered: if it was down, say that it is back."""
        if self._down_since is None:  # the common case, without the lock
            return
        with self._lock:
            if self._down_since is None:
                return
            seconds = time.monotonic() - self._down_since
            refused, self._refused, self._down_since = self._refused, 0, None
        self._log.warning(
            "PostgreSQL is reachable again after %.0f s; %d requests were refused meanwhile.",
            seconds,
            refused,
        )


#: The process's one monitor (an outage is a fact about this process's database).
monitor = OutageMonitor()
