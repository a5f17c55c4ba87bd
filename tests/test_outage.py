"""Honest outages: with PostgreSQL stopped, login and every request say "the service
is unavailable, try again shortly" (503), the chat says the same, the log says what
failed once per outage; when PostgreSQL returns, the app recovers by itself."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.cli import run_kb
from tests.kb_server import (
    THREADS_PAGE,
    KbServer,
    chat_replies_after,
    running_server,
    serve_env,
    socket_connects,
    wait_until,
)
from tests.pg_tcp import TcpServer, start_tcp_server

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
UNAVAILABLE = "The service is unavailable, try again shortly."
ADMIN = {"username": "admin", "password": "admin-password-1"}


@dataclass
class Deployment:
    database: TcpServer
    app: KbServer


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """`kb serve` on its own PostgreSQL (TCP, password), which tests stop and start."""
    root = tmp_path_factory.mktemp("outage")
    root.chmod(0o755)
    database = start_tcp_server(root / "pg", password="outage-pw")
    try:
        with psycopg.connect(database.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE kb")
        url = database.url("kb")
        setup = run_kb("setup", cwd=root, database_url=url)
        assert setup.returncode == 0, setup.stdout + setup.stderr
        with running_server(root, serve_env(url, root / "data")) as app:
            yield Deployment(database, app)
    finally:
        database.stop_if_running()


def _log_count(app: KbServer, text: str) -> int:
    return app.log().count(text)


def test_a_database_outage_is_told_honestly_and_recovered_from(deployment: Deployment) -> None:
    app, database = deployment.app, deployment.database
    client = app.login(ADMIN["username"], ADMIN["password"])
    token = client.cookies.get("access_token")
    assert token and client.get("/user").status_code == 200
    before = _log_count(app, "PostgreSQL is unreachable")

    replies = asyncio.run(
        chat_replies_after(
            app,
            token=token,
            login="admin",
            question="What temperature does the reactor run at?",
            before_asking=database.stop,
            until=UNAVAILABLE,
        )
    )
    assert any(UNAVAILABLE in r for r in replies), replies

    for _ in range(3):
        login = app.client().post("/login", data=ADMIN)
        assert login.status_code == 503
        assert login.json() == {"detail": UNAVAILABLE}
        user = client.get("/user")
        assert user.status_code == 503 and user.json() == {"detail": UNAVAILABLE}
        assert client.post("/project/threads", json=THREADS_PAGE).status_code == 503
        assert not asyncio.run(socket_connects(app, token=token))
    # Nothing pretends the password was wrong, and the log says it once.
    assert "wrong password" not in app.log()
    assert _log_count(app, "PostgreSQL is unreachable") == before + 1

    database.start()
    wait_until(lambda: client.get("/user").status_code == 200, 120, "the app to recover")
    assert app.client().post("/login", data=ADMIN).status_code == 200
    assert asyncio.run(socket_connects(app, token=token))
    assert _log_count(app, "PostgreSQL is reachable again") == 1
    assert _log_count(app, "PostgreSQL is unreachable") == before + 1


@pytest.mark.browser
def test_the_login_form_says_the_service_is_unavailable(deployment: Deployment) -> None:
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("/usr/bin/chromium is missing")
    from playwright.sync_api import sync_playwright

    app, database = deployment.app, deployment.database
    database.stop()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(app.base + "/")
            page.fill("#email", "admin", timeout=60_000)
            page.fill("#password", "admin-password-1")
            page.click("button[type=submit]")
            try:
                page.get_by_text(UNAVAILABLE).first.wait_for(timeout=60_000)
            except Exception:
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "outage-login.png"))
                raise
            browser.close()
    finally:
        database.start()
    wait_until(
        lambda: app.client().post("/login", data=ADMIN).status_code == 200,
        120,
        "logins to work again",
    )
