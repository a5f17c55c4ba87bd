"""The embedded default: `kb setup` with no DATABASE_URL starts PostgreSQL in the data
directory; a second process attaches to it; data survives a restart."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli import run_kb, run_python


def kb(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_kb(*args, cwd=cwd)


@pytest.fixture
def app_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    # Stop the embedded server if a failed test left it running.
    pgdata = tmp_path / ".kb" / "pgdata"
    if (pgdata / "postmaster.pid").exists():
        from db.embedded import binaries_dir

        subprocess.run(
            [str(binaries_dir() / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "stop"],
            capture_output=True,
            check=False,
            user="pgserver" if os.geteuid() == 0 else None,
        )


def test_setup_without_configuration_uses_embedded_server_and_data_persists(app_dir: Path) -> None:
    setup = kb("setup", cwd=app_dir)
    assert setup.returncode == 0, setup.stderr
    assert "embedded server in" in setup.stdout
    assert (app_dir / ".kb" / "pgdata" / "PG_VERSION").exists()
    assert kb("users", "add", "ada", "--password", "lovelace-1815", cwd=app_dir).returncode == 0
    # The server stopped with the last process; a new process starts it again.
    assert not (app_dir / ".kb" / "pgdata" / "postmaster.pid").exists()
    listed = kb("users", "list", cwd=app_dir)
    assert listed.returncode == 0 and "ada" in listed.stdout


def test_second_process_attaches_to_the_running_server(app_dir: Path) -> None:
    assert kb("setup", cwd=app_dir).returncode == 0
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent("""
            import sys
            from pathlib import Path
            from db.embedded import start_embedded
            server = start_embedded(Path('.kb/pgdata'))
            print(server.pgdata / 'postmaster.pid', flush=True)
            sys.stdin.readline()
            server.stop()
        """),
        ],
        cwd=app_dir,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        pid_file = Path(holder.stdout.readline().strip())
        first_pid = pid_file.read_text().splitlines()[0]
        second = run_python(
            """
            from pathlib import Path
            from db.embedded import start_embedded
            server = start_embedded(Path('.kb/pgdata'))
            print((server.pgdata / 'postmaster.pid').read_text().splitlines()[0])
            server.stop()
            """,
            cwd=app_dir,
        )
        assert second.returncode == 0, second.stderr
        assert second.stdout.strip() == first_pid  # same server, not a second one
        assert pid_file.exists()  # the second process did not stop the first one's server
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=60)


def test_db_shell_opens_psql_on_the_embedded_database_and_stops_it_after(app_dir: Path) -> None:
    assert run_kb("setup", cwd=app_dir).returncode == 0
    shell = run_kb(
        "db", "shell", cwd=app_dir, stdin="SELECT count(*) AS kb_tables FROM document_chunks;\n"
    )
    assert shell.returncode == 0, shell.stderr
    assert "kb_tables" in shell.stdout and "0" in shell.stdout
    assert not (app_dir / ".kb" / "pgdata" / "postmaster.pid").exists()
