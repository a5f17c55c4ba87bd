"""Run `kb` (or Python) in a subprocess as a person would: a clean environment with
no KB_* settings leaking in from the test process (except the session's ONNX export
cache, KB_MODELS_DIR, which only saves re-exporting the model)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path


def clean_env(database_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_") and k != "DATABASE_URL"}
    if "KB_MODELS_DIR" in os.environ:
        env["KB_MODELS_DIR"] = os.environ["KB_MODELS_DIR"]
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    env.update(extra)
    return env


def run_kb(
    *args: str,
    cwd: Path,
    database_url: str | None = None,
    stdin: str | None = None,
    **extra_env: str,
) -> subprocess.CompletedProcess[str]:
    """`kb ARGS...`; without `database_url` it uses the embedded server under `cwd`."""
    return subprocess.run(
        [sys.executable, "-m", "chat_app.cli", *args],
        env=clean_env(database_url, **extra_env),
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


def run_python(code: str, *, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=clean_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
