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


def test_embedded_server_gets_a_buffer_cache_sized_to_the_machine_and_keeps_an_edit(
    app_dir: Path,
) -> None:
    import psutil

    from db.embedded import TUNING_FILE, shared_buffers_mb

    assert kb("setup", cwd=app_dir).returncode == 0
    tuning = app_dir / ".kb" / "pgdata" / TUNING_FILE
    expected = shared_buffers_mb(psutil.virtual_memory().total)
    assert f"shared_buffers = '{expected}MB'" in tuning.read_text()
    shown = run_kb("db", "shell", cwd=app_dir, stdin="SHOW shared_buffers;\n")
    assert shown.returncode == 0, shown.stderr
    assert _megabytes(shown.stdout) == expected
    # An operator's edit survives the next start.
    tuning.write_text("shared_buffers = '160MB'\n")
    shown = run_kb("db", "shell", cwd=app_dir, stdin="SHOW shared_buffers;\n")
    assert _megabytes(shown.stdout) == 160
    assert tuning.read_text() == "shared_buffers = '160MB'\n"


def _megabytes(psql_output: str) -> int:
    for line in psql_output.split():
        if line.endswith("MB") and line[:-2].isdigit():
            return int(line[:-2])
        if line.endswith("GB") and line[:-2].isdigit():
            return int(line[:-2]) * 1024
    raise AssertionError(f"no size in {psql_output!r}")


def test_buffer_cache_is_an_eighth_of_memory_within_bounds() -> None:
    from db.embedded import shared_buffers_mb

    gib = 1024**3
    assert shared_buffers_mb(24 * gib) == 3072
    assert shared_buffers_mb(512 * 1024**2) == 128  # never below PostgreSQL's default
    assert shared_buffers_mb(256 * gib) == 4096
