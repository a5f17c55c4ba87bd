"""The embedded server's lifecycle under hard kills: a SIGKILLed `kb serve` leaves no
app holding the port and no PostgreSQL running; a killed process's handle does not
keep PostgreSQL alive for ever; two servers on one fresh data directory both start;
a port in use is reported in one line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.cli import run_kb
from tests.kb_server import START_S, running_server, serve_env, start_server, wait_until
from tests.pg_tcp import free_port


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _handles(folder: Path) -> list[int]:
    path = folder / ".kb" / "pgdata" / ".handle_pids.json"
    return [int(p) for p in json.loads(path.read_text() or "[]")] if path.exists() else []


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    tmp_path.chmod(0o755)  # the embedded server's user walks into it
    return tmp_path


def _stop_leftover_postgres(folder: Path) -> None:
    pgdata = folder / ".kb" / "pgdata"
    if (pgdata / "postmaster.pid").exists():
        from db.embedded import binaries_dir

        subprocess.run(
            [str(binaries_dir() / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "stop"],
            capture_output=True,
            check=False,
            user="pgserver" if os.geteuid() == 0 else None,
        )


def test_sigkill_of_kb_serve_then_a_new_start_is_clean(folder: Path) -> None:
    env = serve_env(None, folder / ".kb")
    postmaster = folder / ".kb" / "pgdata" / "postmaster.pid"
    port = free_port()
    try:
        first = start_server(folder, env, port=port)
        wait_until(first.healthy, START_S, "the first kb serve")
        app = psutil.Process(first.process.pid).children(recursive=True)
        assert app and postmaster.exists()

        first.process.kill()  # SIGKILL: no handler runs in kb serve
        first.process.wait()
        # The app notices its parent died, stops, and (last handle) stops PostgreSQL.
        wait_until(lambda: not any(_alive(p) for p in app), 120, "the app to stop")
        wait_until(lambda: _port_free(port), 60, "the port to be free")
        wait_until(lambda: not postmaster.exists(), 60, "PostgreSQL to stop")

        with running_server(folder, env, port=port, log_name="second.log") as second:
            assert second.client().get("/health").status_code == 200
            app = psutil.Process(second.process.pid).children(recursive=True)
        assert second.process.returncode in (0, -signal.SIGTERM)
        assert not any(_alive(p) for p in app)
        assert not postmaster.exists(), "SIGTERM left PostgreSQL running"
    finally:
        _stop_leftover_postgres(folder)


def test_a_handle_left_by_a_killed_process_does_not_keep_postgres_running(
    folder: Path,
) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from db.embedded import start_embedded\n"
            "start_embedded(Path('.kb/pgdata'))\n"
            "print('ready', flush=True)\n"
            "time.sleep(3600)\n",
        ],
        cwd=folder,
        stdout=subprocess.PIPE,
        text=True,
    )
    postmaster = folder / ".kb" / "pgdata" / "postmaster.pid"
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        holder.kill()
        holder.wait()
        assert holder.pid in _handles(folder)  # what the wheel leaves behind
        assert postmaster.exists()

        env = serve_env(None, folder / ".kb")
        with running_server(folder, env) as server:
            assert holder.pid not in _handles(folder)
            assert server.client().get("/health").status_code == 200
        assert not postmaster.exists(), "a dead handle kept PostgreSQL running"
        assert _handles(folder) == []
    finally:
        if holder.poll() is None:
            holder.kill()
        _stop_leftover_postgres(folder)


def test_two_servers_on_one_fresh_data_directory_both_start(folder: Path) -> None:
    env = serve_env(None, folder / ".kb")
    postmaster = folder / ".kb" / "pgdata" / "postmaster.pid"
    servers = [start_server(folder, env, log_name=f"serve-{i}.log") for i in range(2)]
    try:
        for server in servers:
            wait_until(server.healthy, START_S, "both servers")
        for server in servers:
            log = server.log()
            assert "Traceback" not in log and "UniqueViolation" not in log, log
            # Chainlit deletes its upload folder when it stops: one each.
            assert (folder / ".kb" / "chainlit" / f"port-{server.port}" / ".files").is_dir()
        assert servers[0].stop() in (0, -signal.SIGTERM)
        assert servers[1].client().get("/health").status_code == 200
        assert postmaster.exists()
        assert servers[1].stop() in (0, -signal.SIGTERM)
        assert not postmaster.exists()
    finally:
        for server in servers:
            server.stop()
        _stop_leftover_postgres(folder)


def test_a_port_in_use_is_reported_in_one_line(folder: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_kb("serve", "--port", str(port), cwd=folder)
    assert result.returncode == 1
    assert f"Port {port} on 127.0.0.1 is already in use" in result.stderr
    assert f"pid {os.getpid()}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (folder / ".kb" / "pgdata").exists()  # refused before starting anything
