"""`/healthz` and `/readyz` for load balancers and orchestrators.

Both answer without authentication and say nothing but a status:

- `/healthz`: 200 `{"status": "ok"}` while the process serves requests (liveness);
- `/readyz`: 200 `{"status": "ready"}` when the database answers, its schema is at the
  revision this code expects, and the embedding model is loaded (so a question will
  not wait for it); else 503 `{"status": "not ready"}`. What failed goes to the server
  log, once per change, not to the caller.

Chainlit's own `/health` stays as it is (the tests' start-up probe uses it).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from chat_app.services import Services

__all__ = ["HEALTH_ROUTE", "READY_ROUTE", "add_route_first", "install_health_routes", "readiness"]

log = logging.getLogger("kb.health")

HEALTH_ROUTE = "/healthz"
READY_ROUTE = "/readyz"
# A readiness probe must answer even when the database hangs.
CHECK_TIMEOUT_SECONDS = 5.0
_REVISION = sa.text("SELECT version_num FROM alembic_version")
_NO_STORE = {"Cache-Control": "no-store"}


def add_route_first(app: FastAPI, path: str, endpoint: Callable[..., Any], name: str) -> None:
    """Add `GET path` in FRONT of Chainlit's catch-all route (else it never matches)."""
    if any(getattr(r, "path", None) == path for r in app.router.routes):
        return
    app.add_api_route(path, endpoint, methods=["GET"], name=name)
    app.router.routes.insert(0, app.router.routes.pop())


@functools.cache
def _head() -> str:
    from db.schema import head_revision

    return head_revision()


def readiness(services: Services | None) -> list[str]:
    """The checks that fail now (empty: ready): database, schema, embeddings."""
    if services is None:
        return ["starting"]
    failed = []
    try:
        with services.engine.connect() as connection:
            revision = connection.execute(_REVISION).scalar()
    except Exception:
        failed.append("database")
    else:
        if revision != _head():
            failed.append("schema")
    if not services.embeddings_loaded:
        failed.append("embeddings")
    return failed


class _Changes:
    """Logs what readiness found only when it changes (probes run every few seconds)."""

    def __init__(self) -> None:
        self.last: list[str] | None = None

    def report(self, failed: list[str]) -> None:
        if failed == self.last:
            return
        if failed:
            log.warning("not ready: %s", ", ".join(failed))
        elif self.last is not None:
            log.info("ready")
        self.last = failed


def install_health_routes(app: FastAPI, services: Callable[[], Services | None]) -> None:
    """`GET /healthz` and `GET /readyz`; `services` returns the process's `Services`
    once it is open (None while starting: a probe never opens them)."""
    from fastapi.responses import JSONResponse

    changes = _Changes()

    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"}, headers=_NO_STORE)

    async def readyz() -> JSONResponse:
        try:
            failed = await asyncio.wait_for(
                asyncio.to_thread(readiness, services()), CHECK_TIMEOUT_SECONDS
            )
        except TimeoutError:
            failed = ["database (timed out)"]
        changes.report(failed)
        return JSONResponse(
            {"status": "not ready" if failed else "ready"},
            status_code=503 if failed else 200,
            headers=_NO_STORE,
        )

    add_route_first(app, HEALTH_ROUTE, healthz, "kb_healthz")
    add_route_first(app, READY_ROUTE, readyz, "kb_readyz")
