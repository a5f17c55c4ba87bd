"""`kb users` and `kb db backup/restore` as a person runs them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.cli import run_kb
from tests.fakes import MakeUser


def kb(*args: str, db_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_kb(*args, cwd=cwd, database_url=db_url)


def test_users_add_list_disable(db_url: str, tmp_path: Path, engine: Engine) -> None:
    added = kb(
        "users",
        "add",
        "Grace@Example.com",
        "--password",
        "hopper-1906",
        db_url=db_url,
        cwd=tmp_path,
    )
    assert added.returncode == 0, added.stderr
    duplicate = kb(
        "users",
        "add",
        "grace@example.com",
        "--password",
        "hopper-1906",
        db_url=db_url,
        cwd=tmp_path,
    )
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
    assert "Traceback" not in duplicate.stderr
    assert kb("users", "disable", "grace@example.com", db_url=db_url, cwd=tmp_path).returncode == 0
    listed = kb("users", "list", db_url=db_url, cwd=tmp_path)
    assert "grace@example.com" in listed.stdout and "no" in listed.stdout
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT is_active FROM users")).scalar_one() is False


def test_unknown_user_is_a_one_line_error(db_url: str, tmp_path: Path) -> None:
    result = kb("users", "disable", "nobody", db_url=db_url, cwd=tmp_path)
    assert result.returncode == 1
    assert "No user 'nobody'" in result.stderr and "Traceback" not in result.stderr


def test_backup_and_restore_bring_back_the_data(
    db_url: str, tmp_path: Path, engine: Engine, make_user: MakeUser
) -> None:
    make_user("keeper")
    dump = tmp_path / "kb.dump"
    backup = kb("db", "backup", str(dump), db_url=db_url, cwd=tmp_path)
    assert backup.returncode == 0, backup.stderr
    assert dump.stat().st_size > 0
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM users"))
    restore = kb("db", "restore", str(dump), "--yes", db_url=db_url, cwd=tmp_path)
    assert restore.returncode == 0, restore.stderr
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT identifier FROM users")).scalars().all() == ["keeper"]


def test_reset_empties_every_table_and_keeps_the_schema_usable(
    db_url: str, tmp_path: Path, engine: Engine, make_user: MakeUser
) -> None:
    make_user("temporary")
    refused = kb("db", "reset", db_url=db_url, cwd=tmp_path)  # no --yes, no terminal: aborts
    assert refused.returncode != 0
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM users")).scalar() == 1
    reset = kb("db", "reset", "--yes", db_url=db_url, cwd=tmp_path)
    assert reset.returncode == 0, reset.stderr
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM users")).scalar() == 0
    doctor = kb("doctor", db_url=db_url, cwd=tmp_path)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
