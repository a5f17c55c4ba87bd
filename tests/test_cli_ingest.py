"""`kb ingest` and `kb sources` driven through the real CLI against the test database.

These run the configured (real, bundled) embedding model: the CLI builds its own
services from the environment, as it does for people. The model loads once per process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner, Result

from chat_app.cli import app
from db.models import User
from tests.ingest_fixtures import chunk_snapshot

MakeUser = Callable[..., User]


@pytest.fixture
def kb(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run `kb ARGS...` in-process with the test database configured, from tmp_path."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(
            app, list(args), env={"KB_DATABASE_URL": db_url, "DATABASE_URL": db_url}
        )

    return run


def _kb_subprocess(db_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env |= {"KB_DATABASE_URL": db_url, "DATABASE_URL": db_url}
    return subprocess.run(
        [sys.executable, "-m", "chat_app.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _corpus(root: Path) -> None:
    (root / "docs" / "sub").mkdir(parents=True)
    (root / "docs" / "guide.md").write_text(
        "# Setup\n\nInstall the llama feeder.\n\n## Daily use\n\nFill it every morning.\n"
    )
    (root / "docs" / "sub" / "notes.txt").write_text("Alpacas hum when they are content.")
    (root / "docs" / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    (root / "empty.txt").write_text("")


def test_ingest_reports_every_file_and_exits_1_when_one_failed(
    kb: Callable[..., Result],
    tmp_path: Path,
    engine: Engine,
    make_user: MakeUser,
    caplog: pytest.LogCaptureFixture,
) -> None:
    alice = make_user("alice")
    _corpus(tmp_path)

    result = kb("ingest", "docs", "empty.txt", "--user", "alice")

    assert result.exit_code == 1, result.output
    assert "skipped docs/clip.mp4 (unsupported type)" in result.stdout
    assert "Ingest summary" in result.stdout
    assert "2 indexed, 1 error (3 files)" in result.stdout
    assert "Error: empty.txt is empty" in result.stderr
    # The jobs ran in this command: their bad input is a line of the log, no traceback.
    failed = [r for r in caplog.records if r.name.startswith("procrastinate.worker")]
    assert [(r.levelname, r.exc_info) for r in failed if "empty.txt" in r.getMessage()] == [
        ("WARNING", None)
    ]
    indexed = {r[2] for r in chunk_snapshot(engine, alice.id)}
    assert indexed == {"docs/guide.md", "docs/sub/notes.txt"}


def test_ingesting_again_is_unchanged_writes_nothing_and_exits_0(
    kb: Callable[..., Result], tmp_path: Path, engine: Engine, make_user: MakeUser
) -> None:
    make_user("alice")
    _corpus(tmp_path)
    assert kb("ingest", "docs", "--user", "alice").exit_code == 0
    before = chunk_snapshot(engine)

    result = kb("ingest", "docs", "--user", "alice")

    assert result.exit_code == 0, result.output
    assert "2 unchanged (2 files)" in result.stdout
    assert chunk_snapshot(engine) == before


def test_an_explicitly_named_unsupported_file_is_an_error(
    kb: Callable[..., Result], tmp_path: Path, engine: Engine, make_user: MakeUser
) -> None:
    make_user("alice")
    _corpus(tmp_path)
    result = kb("ingest", "docs/clip.mp4", "--user", "alice")
    assert result.exit_code == 1
    assert "Error: clip.mp4 is not a supported file type" in result.stderr
    assert chunk_snapshot(engine) == []


def test_sources_list_and_delete(
    kb: Callable[..., Result], tmp_path: Path, engine: Engine, make_user: MakeUser
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    _corpus(tmp_path)
    assert kb("ingest", "docs", "--user", "alice").exit_code == 0
    assert kb("ingest", "docs/sub/notes.txt", "--user", "bob").exit_code == 0

    listed = kb("sources", "list", "--user", "alice")
    assert listed.exit_code == 0
    assert "docs/guide.md" in listed.stdout and "docs/sub/notes.txt" in listed.stdout
    assert "2 sources" in listed.stdout

    deleted = kb("sources", "delete", "docs/guide.md", "--user", "alice")
    assert deleted.exit_code == 0 and "Deleted docs/guide.md" in deleted.stdout
    assert {r[2] for r in chunk_snapshot(engine, alice.id)} == {"docs/sub/notes.txt"}
    assert {r[2] for r in chunk_snapshot(engine, bob.id)} == {"notes.txt"}


def test_unknown_source_or_user_is_one_error_line(
    db_url: str, tmp_path: Path, make_user: MakeUser
) -> None:
    make_user("alice")
    missing = _kb_subprocess(db_url, tmp_path, "sources", "delete", "nope.md", "--user", "alice")
    assert missing.returncode == 1
    assert missing.stderr.startswith("Error: alice has no source 'nope.md'.")
    assert "Traceback" not in missing.stderr

    nobody = _kb_subprocess(db_url, tmp_path, "ingest", ".", "--user", "nobody")
    assert nobody.returncode == 1
    assert nobody.stderr.startswith("Error:") and "nobody" in nobody.stderr
