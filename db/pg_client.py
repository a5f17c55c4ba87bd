"""PostgreSQL client programs (psql, pg_dump, pg_restore) for a database URL.

The embedded wheel ships them, so they work without a system PostgreSQL. The
password travels in PGPASSWORD, never on the command line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url

from db.errors import KbError

__all__ = ["backup", "client_command", "libpq_url", "restore"]


def _binary(name: str) -> str:
    try:
        from db.embedded import binaries_dir

        path = binaries_dir() / name
        if path.exists():
            return str(path)
    except Exception:  # the wheel is missing or broken: fall back to PATH
        pass
    found = shutil.which(name)
    if not found:
        raise KbError(f"{name} was not found.", hint="Install the PostgreSQL client programs.")
    return found


def libpq_url(url: str) -> tuple[str, dict[str, str]]:
    """(URL without driver or password, environment with PGPASSWORD)."""
    parsed = make_url(url).set(drivername="postgresql")
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    return parsed.set(password=None).render_as_string(hide_password=False), env


def client_command(name: str, url: str, *args: str) -> tuple[list[str], dict[str, str]]:
    conn, env = libpq_url(url)
    return [_binary(name), *args, f"--dbname={conn}"], env


def _run(command: list[str], env: dict[str, str], what: str) -> None:
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise KbError(
            f"{what} failed: {detail[-1] if detail else 'exit ' + str(result.returncode)}"
        )


def backup(url: str, path: Path) -> None:
    """The whole database into one custom-format dump file."""
    command, env = client_command("pg_dump", url, "--format=custom", f"--file={path}", "--no-owner")
    _run(command, env, "Backup")


def restore(url: str, path: Path) -> None:
    """Replace the database's objects with those of a dump made by `backup`."""
    if not path.is_file():
        raise KbError(f"No backup file at {path}.")
    command, env = client_command(
        "pg_restore", url, "--clean", "--if-exists", "--no-owner", "--single-transaction", str(path)
    )
    _run(command, env, "Restore")
