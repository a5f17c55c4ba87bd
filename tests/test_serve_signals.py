"""`kb serve` under a service manager: SIGTERM stops the app and the embedded
PostgreSQL with it, leaving nothing running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

from tests.cli import clean_env
from tests.pg_tcp import free_port


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_sigterm_stops_the_app_and_the_embedded_database(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(KB_ADMIN_PASSWORD="admin-password-1")
    env.pop("CI", None)
    serve = subprocess.Popen(
        [sys.executable, "-m", "chat_app.cli", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    pid_file = tmp_path / ".kb" / "pgdata" / "postmaster.pid"
    try:
        # Wait on the condition (the page answers), bounded so a broken start fails.
        for _ in range(600):
            if _answers(f"http://127.0.0.1:{port}/") or serve.poll() is not None:
                break
            time.sleep(0.2)
        assert serve.poll() is None, serve.stdout.read() if serve.stdout else ""
        assert pid_file.exists()
        children = psutil.Process(serve.pid).children(recursive=True)
        assert children, "kb serve runs the app as a child process"

        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=120)

        assert not pid_file.exists(), "the embedded PostgreSQL was left running"
        assert not [c for c in children if c.is_running() and c.status() != "zombie"]
    finally:
        if serve.poll() is None:
            serve.kill()
        if pid_file.exists():
            from db.embedded import binaries_dir

            subprocess.run(
                [str(binaries_dir() / "pg_ctl"), "-D", str(pid_file.parent), "-m", "fast", "stop"],
                capture_output=True,
                check=False,
                user="pgserver" if os.geteuid() == 0 else None,
            )
