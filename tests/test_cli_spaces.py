"""`kb spaces ...` and the `--space` options, through the real CLI on the test database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner, Result

from chat_app.cli import app
from db import spaces as repo
from db.errors import KbError
from db.models import User

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


def said(result: Result) -> str:
    """What a person sees: the output, or the one-line error `kb` prints for a KbError
    (the in-process runner hands the exception back instead of printing it)."""
    return result.output + (str(result.exception) if result.exception else "")


def _roles(engine: Engine, name: str) -> dict[str, str]:
    with Session(engine) as session:
        space = repo.require_space(session=session, name=name)
        return {m.identifier: m.role for m in repo.list_members(session=session, space=space)}


def test_the_space_commands_manage_a_space_end_to_end(
    kb: Callable[..., Result], engine: Engine, make_user: MakeUser
) -> None:
    for login in ("olivia", "erin", "rita"):
        make_user(login)

    created = kb("spaces", "create", "Team handbook", "--owner", "olivia")
    assert created.exit_code == 0, created.output
    assert "Created space Team handbook" in created.output
    assert kb("spaces", "add-member", "team HANDBOOK", "erin", "--role", "editor").exit_code == 0
    assert kb("spaces", "add-member", "Team handbook", "rita", "--role", "reader").exit_code == 0
    assert _roles(engine, "Team handbook") == {
        "olivia": "owner",
        "erin": "editor",
        "rita": "reader",
    }

    listed = kb("spaces", "list")
    assert "Team handbook" in listed.output and "shared" in listed.output
    mine = kb("spaces", "list", "--user", "rita")
    assert "Personal" in mine.output and "reader" in mine.output
    members = kb("spaces", "members", "Team handbook")
    assert all(name in members.output for name in ("olivia", "erin", "rita"))

    assert kb("spaces", "set-role", "Team handbook", "rita", "--role", "editor").exit_code == 0
    assert _roles(engine, "Team handbook")["rita"] == "editor"
    assert kb("spaces", "remove-member", "Team handbook", "rita").exit_code == 0
    assert "rita" not in _roles(engine, "Team handbook")
    assert kb("spaces", "rename", "Team handbook", "Handbook").exit_code == 0
    assert kb("spaces", "delete", "Handbook", "--yes").exit_code == 0
    assert "Handbook" not in kb("spaces", "list").output


def test_the_space_rules_fail_with_one_clear_line(
    kb: Callable[..., Result], make_user: MakeUser
) -> None:
    make_user("olivia")
    make_user("erin")
    assert kb("spaces", "create", "Ops", "--owner", "olivia").exit_code == 0

    twice = kb("spaces", "create", "OPS", "--owner", "erin")
    assert twice.exit_code == 1 and "exists already" in said(twice)
    last_owner = kb("spaces", "remove-member", "Ops", "olivia")
    assert last_owner.exit_code == 1 and "last owner" in said(last_owner)
    bad_role = kb("spaces", "add-member", "Ops", "erin", "--role", "admin")
    assert bad_role.exit_code == 1 and "Unknown role" in said(bad_role)
    missing = kb("spaces", "members", "Nowhere")
    assert missing.exit_code == 1 and "No space named 'Nowhere'" in said(missing)
    for result in (twice, last_owner, bad_role, missing):
        assert isinstance(result.exception, KbError)


@pytest.mark.model
def test_ingest_and_ask_in_a_space_and_a_readers_refusal(
    kb: Callable[..., Result], make_user: MakeUser, tmp_path: Path
) -> None:
    for login in ("olivia", "rita"):
        make_user(login)
    assert kb("spaces", "create", "Reactor", "--owner", "olivia").exit_code == 0
    assert kb("spaces", "add-member", "Reactor", "rita", "--role", "reader").exit_code == 0
    manual = tmp_path / "reactor.md"
    manual.write_text("# Reactor\n\nThe Zorblatt reactor operates at exactly 4217 kelvin.\n")

    refused = kb("ingest", str(manual), "--user", "rita", "--space", "Reactor")
    assert refused.exit_code == 1 and "You are a reader of 'Reactor'" in said(refused)
    added = kb("ingest", str(manual), "--user", "olivia", "--space", "Reactor")
    assert added.exit_code == 0, added.output

    answer = kb("ask", "How hot is the Zorblatt reactor?", "--user", "rita")
    assert answer.exit_code == 0 and "4217" in answer.output
    only_mine = kb("ask", "How hot is the Zorblatt reactor?", "--user", "olivia", "--space", "Nope")
    assert only_mine.exit_code == 1 and "No space named 'Nope'" in said(only_mine)
    sources = kb("sources", "list", "--user", "rita")
    assert "Reactor" in sources.output and "reactor.md" in sources.output
    assert "olivia" in sources.output  # who added it
