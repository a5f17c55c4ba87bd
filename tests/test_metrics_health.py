"""Health, readiness and Prometheus metrics: in front of the app's real services (fast),
and on a real `kb serve` with a real worker, scraped after an upload and a question."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.engine import Engine

from chat_app.health import add_route_first, install_health_routes
from chat_app.metrics import install_metrics_route
from chat_app.services import Services
from db.engine import PoolConfig, make_engine
from tests.app_fixtures import app_services
from tests.conftest import create_database, drop_database
from tests.kb_server import (
    KbServer,
    chat_replies_after,
    running_server,
    serve_env,
    upload_through_chat,
    wait_until,
)
from tests.prometheus_text import Scrape, samples, value
from tests.web_fixtures import PASSWORD, add_account

__all__ = ["app_services"]

TOKEN = "scrape-token-7f3a"
REACTOR = "# Zorblatt reactor\n\nThe Zorblatt reactor runs at 451 kelvin on tuesdays.\n"


def app_with_routes(services: Callable[[], Services | None]) -> FastAPI:
    app = FastAPI()
    install_health_routes(app, services)
    install_metrics_route(app, services, add_route_first)
    return app


async def get(app: FastAPI, path: str, **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kb") as client:
        return await client.get(path, headers=headers)


async def test_healthz_is_ok_and_readyz_waits_for_database_schema_and_model(
    app_services: Callable[..., Services], engine: Engine
) -> None:
    services = app_services()
    opened: list[Services | None] = [None]
    app = app_with_routes(lambda: opened[0])

    health = await get(app, "/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    starting = await get(app, "/readyz")
    assert (starting.status_code, starting.json()) == (503, {"status": "not ready"})

    opened[0] = services
    no_model = await get(app, "/readyz")
    assert (no_model.status_code, no_model.json()) == (503, {"status": "not ready"})
    assert services.embeddings is not None  # the app loads it in the background at start
    ready = await get(app, "/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    assert ready.headers["cache-control"] == "no-store"

    with engine.begin() as conn:  # a database behind the code's migrations
        head = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
    behind = await get(app, "/readyz")
    assert (behind.status_code, behind.json()) == (503, {"status": "not ready"})
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": head})


async def test_metrics_are_off_without_a_token_and_need_it_when_on(
    app_services: Callable[..., Services],
) -> None:
    closed = app_services()
    assert (await get(app_with_routes(lambda: closed), "/metrics")).status_code == 404

    services = app_services(metrics_token=TOKEN)
    services.metrics.watch(services)
    app = app_with_routes(lambda: services)
    assert (await get(app, "/metrics")).status_code == 401
    wrong = await get(app, "/metrics", authorization="Bearer not-the-token")
    assert wrong.status_code == 401 and wrong.text == ""
    scraped = await get(app, "/metrics", authorization=f"Bearer {TOKEN}")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    scrape = samples(scraped.text)
    assert value(scrape, "kb_db_pool_limit", pool="primary") > 0
    assert value(scrape, "kb_notion_syncs_last_day", outcome="failed") == 0
    assert ("kb_ingest_chunks_per_second", ()) in scrape


# -- a real kb serve with a real worker ---------------------------------------------------


@pytest.fixture
def metrics_db(pg_admin_url: str, template_url: str) -> Iterator[str]:
    url = create_database(pg_admin_url, prefix="kb_metrics")
    yield url
    drop_database(pg_admin_url, url)


@pytest.fixture
def served(metrics_db: str, tmp_path: Path) -> Iterator[KbServer]:
    folder = tmp_path / "serve"
    folder.mkdir()
    folder.chmod(0o755)
    env = serve_env(
        metrics_db,
        folder / "data",
        KB_METRICS_TOKEN=TOKEN,
        KB_WORKERS="1",
        KB_WORKER_NICE="0",
        KB_NOTION_SYNC_INTERVAL_MINUTES="off",
    )
    if "KB_MODELS_DIR" in os.environ:  # the session's ONNX export, made once
        env["KB_MODELS_DIR"] = os.environ["KB_MODELS_DIR"]
    with running_server(folder, env) as server:
        yield server


def scrape(server: KbServer) -> Scrape:
    response = server.client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    return samples(response.text)


def job_status(engine: Engine, name: str) -> str | None:
    with engine.begin() as conn:
        return conn.execute(
            sa.text("SELECT status FROM jobs WHERE source_id = :name"), {"name": name}
        ).scalar()


@pytest.mark.model
def test_a_scrape_after_an_upload_and_a_question_finds_the_counters_moved(
    served: KbServer, metrics_db: str
) -> None:
    engine = make_engine(metrics_db, PoolConfig(pool_size=1, max_overflow=1))
    try:
        person = add_account(engine, "metrics")
        wait_until(
            lambda: served.client().get("/readyz").status_code == 200, 300, "kb serve to be ready"
        )
        assert served.client().get("/readyz").json() == {"status": "ready"}
        assert served.client().get("/metrics").status_code == 401
        before = scrape(served)

        refused = served.client().post(
            "/login", data={"username": person.identifier, "password": "wrong-password"}
        )
        assert refused.status_code == 401
        client = served.login(person.identifier, PASSWORD)
        token = client.cookies.get("access_token")
        assert token
        name = f"reactor-{uuid.uuid4().hex[:6]}.md"
        asyncio.run(
            upload_through_chat(
                served,
                token=token,
                login=person.identifier,
                name=name,
                data=REACTOR.encode(),
                mime="text/markdown",
            )
        )
        wait_until(lambda: job_status(engine, name) == "done", 600, "the upload's job")
        replies = asyncio.run(
            chat_replies_after(
                served,
                token=token,
                login=person.identifier,
                question="At what temperature does the Zorblatt reactor run?",
                before_asking=lambda: None,
                until="451 kelvin",
            )
        )
        assert any("451 kelvin" in r for r in replies), replies
        after = scrape(served)
    finally:
        engine.dispose()

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("kb_uploads_total") == 1
    assert moved("kb_answers_total", outcome="sourced") == 1
    for stage in ("retrieval", "first_token", "answer"):
        assert moved("kb_question_seconds_count", stage=stage, mode="hybrid") == 1
    assert moved("kb_question_seconds_sum", stage="answer") > 0
    assert moved("kb_login_failures_total", reason="wrong_credentials") == 1
    assert moved("kb_jobs", kind="index_file", status="done") == 1
    assert value(after, "kb_ingest_chunks_last_hour") >= 1
    assert value(after, "kb_ingest_chunks_per_second") > 0
    assert value(after, "kb_db_pool_limit", pool="read") > 0
