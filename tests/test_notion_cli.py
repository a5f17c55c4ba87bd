"""`kb notion ...` as a person runs it (a subprocess against the fake Notion server)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from chat_app.handlers.notion import resync
from chat_app.services import Services
from ingest.notion.service import connect_notion, notion_status
from tests.app_fixtures import app_services, chainlit_context, personal_access
from tests.conftest import personal_space
from tests.fake_notion import FakeNotion, Fault
from tests.job_fixtures import finish
from tests.notion_fixtures import demo, fake

__all__ = ["app_services", "demo", "fake"]  # fixtures imported for pytest


def kb(
    *args: str, db_url: str, cwd: Path, notion_url: str, **settings: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env |= {
        "DATABASE_URL": db_url,
        "KB_NOTION_BASE_URL": notion_url,
        "KB_DATA_DIR": str(cwd / ".kb"),
        **settings,
    }
    return subprocess.run(
        [sys.executable, "-m", "chat_app.cli", "notion", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


def test_connect_status_disconnect(
    db_url: str, engine: Engine, tmp_path: Path, fake: FakeNotion, make_user: Callable[..., Any]
) -> None:
    alice = make_user("alice")
    token = fake.workspace.token

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return kb(*args, db_url=db_url, cwd=tmp_path, notion_url=fake.url)

    refused = run("connect", "--user", "alice", "--token", "ntn_wrong")
    assert refused.returncode == 1 and "rejected the integration token" in refused.stderr
    assert "Traceback" not in refused.stderr
    not_yet = run("sync", "--user", "alice")
    assert not_yet.returncode == 1 and "kb notion connect --user alice" in not_yet.stderr

    connected = run("connect", "--user", "alice", "--token", token)
    assert connected.returncode == 0, connected.stderr
    assert "Notion workspace Acme" in connected.stdout
    status = run("status", "--user", "alice")
    assert status.returncode == 0 and "Acme" in status.stdout and "never" in status.stdout
    gone = run("disconnect", "--user", "alice", "--yes")
    assert gone.returncode == 0 and "Disconnected alice" in gone.stdout
    state = notion_status(
        engine=engine, user_id=alice.id, space_id=personal_space(engine, alice.id)
    )
    assert state is None  # no token and no sync history left
    everything = "".join(r.stdout + r.stderr for r in (connected, status, gone))
    assert token not in everything


async def test_the_chat_and_the_cli_honour_the_same_notion_retry_setting(
    db_url: str,
    engine: Engine,
    tmp_path: Path,
    fake: FakeNotion,
    make_user: Callable[..., Any],
    app_services: Callable[..., Services],
) -> None:
    # Two 503s on every search: with KB_NOTION_MAX_RETRIES=1 both give up, where the
    # default of 5 retries would have succeeded (the chat used to ignore the setting).
    alice = make_user("alice")
    # One try per job, too: otherwise the job itself would be retried (transient error).
    services = app_services(
        notion_base_url=fake.url,
        notion_requests_per_second=0,
        notion_max_retries=1,
        job_max_attempts=1,
    )
    assert services.notion_options().max_retries == 1
    connect_notion(
        engine=services.engine,
        user_id=alice.id,
        space_id=personal_space(engine, alice.id),
        token=fake.workspace.token,
        options=services.notion_options(),
    )
    fake.add_fault(Fault(status=503, kind="search", times=2))
    async with chainlit_context(alice):
        chat = await finish(
            await resync(
                services=services, user_id=alice.id, space=personal_access(services, alice.id)
            ),
            services,
        )
    assert chat.content.startswith("**Notion sync failed:**") and "after 1 retries" in chat.content

    fake.add_fault(Fault(status=503, kind="search", times=2))
    cli = kb(
        "sync",
        "--user",
        "alice",
        db_url=db_url,
        cwd=tmp_path,
        notion_url=fake.url,
        KB_NOTION_MAX_RETRIES="1",
        KB_JOB_MAX_ATTEMPTS="1",
        KB_SECRET_KEY=services.secret_key,
    )
    assert cli.returncode == 1 and "after 1 retries" in cli.stderr, cli.stderr
