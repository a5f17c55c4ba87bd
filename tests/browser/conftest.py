"""Fixtures of the real-browser tests: `kb serve` on a free port, chromium, fake Notion.

`kb serve` runs against a fresh test database with the real embedding model and no
LLM (extractive answers) unless a test module overrides `server_env`. The server log
is copied to `test-artifacts/` after each test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser

from tests.browser.harness import ARTIFACTS, SERVER_START_S, free_port, wait_until
from tests.fake_notion import FakeNotion
from tests.notion_fixtures import build_demo

CHROMIUM = Path("/usr/bin/chromium")
KB = Path(sys.executable).with_name("kb")


@pytest.fixture
def notion() -> Iterator[FakeNotion]:
    """A fake Notion API on 127.0.0.1 with a small workspace (tests/fake_notion)."""
    with FakeNotion(build_demo().workspace) as fake:
        yield fake


@pytest.fixture
def server_env() -> dict[str, str]:
    """Extra environment for `kb serve` (a test module overrides it, e.g. for an LLM)."""
    return {}


@pytest.fixture
def server(
    db_url: str,
    tmp_path: Path,
    notion: FakeNotion,
    server_env: dict[str, str],
    request: pytest.FixtureRequest,
) -> Iterator[str]:
    """`kb serve` on a free port; yields its base URL."""
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing (apt-get install -y chromium)")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env.update(
        DATABASE_URL=db_url,
        KB_MODELS_DIR=os.environ["KB_MODELS_DIR"],  # the session's ONNX export cache
        KB_DATA_DIR=str(tmp_path / "data"),
        KB_ADMIN_PASSWORD="admin-password-1",
        KB_LLM="",
        KB_NOTION_BASE_URL=notion.url,
        KB_NOTION_REQUESTS_PER_SECOND="0",
    )
    env.update(server_env)
    env.pop("CI", None)
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [str(KB), "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if proc.poll() is not None:
            raise AssertionError((tmp_path / "server.log").read_text())
        try:
            return httpx.get(f"{base}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(healthy, SERVER_START_S, "kb serve to answer /health")
        ARTIFACTS.mkdir(exist_ok=True)
        yield base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / f"{request.node.name}-server.log").write_bytes(
            (tmp_path / "server.log").read_bytes()
        )


@pytest.fixture
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield chromium
        chromium.close()
