"""`kb setup` against an external server reached by a postgresql:// URL over TCP,
and the one-line failures for each way that can go wrong."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.cli import run_kb
from tests.pg_tcp import TcpServer, free_port, install_without_pgvector, start_tcp_server


@pytest.fixture(scope="module")
def tcp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TcpServer]:
    server = start_tcp_server(tmp_path_factory.mktemp("tcp-pg"), password="s3cret-pw")
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE kbext")
    yield server
    server.stop()


def kb(*args: str, database_url: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return run_kb(*args, cwd=cwd, database_url=database_url, **env)


def assert_one_line_failure(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in result.stderr, result.stderr


def test_setup_over_tcp_with_password_is_idempotent(tcp_server: TcpServer, tmp_path: Path) -> None:
    url = tcp_server.url("kbext")
    first = kb("setup", database_url=url, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "vector self-test" in first.stdout and "(was empty)" in first.stdout
    second = kb("setup", database_url=url, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "(unchanged)" in second.stdout
    printed = kb("db", "url", database_url=url, cwd=tmp_path)
    assert "s3cret-pw" not in printed.stdout and "127.0.0.1" in printed.stdout


def test_setup_by_an_owner_without_superuser_says_keyword_search_cannot_use_its_index(
    tcp_server: TcpServer, tmp_path: Path
) -> None:
    # A managed PostgreSQL: the app's user owns its database, an admin created pgvector.
    with psycopg.connect(tcp_server.url(), autocommit=True) as conn:
        conn.execute("CREATE ROLE kbowner LOGIN PASSWORD 'owner-pw'")
        conn.execute("CREATE DATABASE kbowned OWNER kbowner")
    with psycopg.connect(tcp_server.url("kbowned"), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION vector")
    url = tcp_server.url("kbowned", user="kbowner", password="owner-pw")
    result = kb("setup", database_url=url, cwd=tmp_path, COLUMNS="400")
    assert result.returncode == 0, result.stdout + result.stderr
    (line,) = [row for row in result.stdout.splitlines() if "keyword index" in row]
    # What it costs and the statements a superuser can run to fix it.
    assert "slower: reads every chunk" in line
    assert "ALTER FUNCTION kb_scoped_lexemes(uuid, tsvector) LEAKPROOF" in line
    doctor = kb("doctor", database_url=url, cwd=tmp_path, COLUMNS="400")
    assert "ALTER FUNCTION kb_scoped_lexemes(uuid, tsvector) LEAKPROOF" in doctor.stdout


def test_setup_over_tcp_reports_the_keyword_index_in_use(
    tcp_server: TcpServer, tmp_path: Path
) -> None:
    result = kb("setup", database_url=tcp_server.url("kbext"), cwd=tmp_path, COLUMNS="400")
    assert result.returncode == 0, result.stderr
    (line,) = [row for row in result.stdout.splitlines() if "keyword index" in row]
    assert "index used under row-level security" in line


def test_setup_with_wrong_password_says_so(tcp_server: TcpServer, tmp_path: Path) -> None:
    result = kb("setup", database_url=tcp_server.url("kbext", password="nope"), cwd=tmp_path)
    assert_one_line_failure(result, "wrong user name or password", "DATABASE_URL")
    assert "nope" not in result.stderr


def test_setup_with_missing_database_names_it(tcp_server: TcpServer, tmp_path: Path) -> None:
    result = kb("setup", database_url=tcp_server.url("no_such_db"), cwd=tmp_path)
    assert_one_line_failure(result, "'no_such_db' does not exist", "createdb")


def test_setup_with_server_down_says_unreachable(tmp_path: Path) -> None:
    url = f"postgresql://postgres:x@127.0.0.1:{free_port()}/kb"
    result = kb("setup", database_url=url, cwd=tmp_path)
    assert_one_line_failure(result, "Cannot reach PostgreSQL", "Start the server")


def test_setup_without_pgvector_explains_the_fix(tmp_path: Path) -> None:
    bin_dir = install_without_pgvector(tmp_path / "pg-no-vector")
    server = start_tcp_server(tmp_path / "srv", password="pw-novector", bin_dir=bin_dir)
    try:
        result = kb("setup", database_url=server.url("postgres"), cwd=tmp_path)
        assert_one_line_failure(result, "pgvector extension is not installed", "Install pgvector")
        with psycopg.connect(server.url(), autocommit=True) as conn:
            tables = conn.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
            ).fetchone()
        assert tables == (0,)  # nothing half-created
    finally:
        server.stop()
