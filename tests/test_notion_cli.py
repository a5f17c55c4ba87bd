"""`kb notion ...` as a person runs it (a subprocess against the fake Notion server)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from ingest.notion.service import notion_status
from tests.fake_notion import FakeNotion
from tests.notion_fixtures import demo, fake

__all__ = ["demo", "fake"]  # fixtures imported for pytest


def kb(*args: str, db_url: str, cwd: Path, notion_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env |= {
        "DATABASE_URL": db_url,
        "KB_NOTION_BASE_URL": notion_url,
        "KB_DATA_DIR": str(cwd / ".kb"),
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
    state = notion_status(engine=engine, user_id=alice.id)
    assert state is None  # no token and no sync history left
    everything = "".join(r.stdout + r.stderr for r in (connected, status, gone))
    assert token not in everything
