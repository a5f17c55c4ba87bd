"""`kb serve`: prepare what the web app needs, then run Chainlit on `chat_app/app.py`
and `KB_WORKERS` job workers (`kb worker`) beside it.

Before starting the server: the schema (migrated here on the embedded default;
an external database must have been set up with `kb setup`), the Chainlit auth
secret (generated once, kept in the data directory), and a first admin account on
a database without users; two servers starting at once on a fresh database take
turns (an advisory lock). The app and worker processes get their settings through
the environment they inherit, like every other entry point, and die with `kb serve`
even when `kb serve` is killed hard (Linux: PR_SET_PDEATHSIG), so no orphan keeps
the port or a job. The web process never embeds documents: uploads are jobs, and the
workers are separate processes (at a lower CPU priority), so indexing a large file
does not slow anyone's questions.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import sqlalchemy as sa
import typer
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from chat_app.cli.output import console
from chat_app.jobs.runner import SHUTDOWN_GRACE_S
from chat_app.services import Services, open_services
from chat_app.settings import Settings, load_settings
from db.errors import KbError, SchemaOutOfDate
from db.models import User
from db.schema import check_schema
from db.users import add_user

__all__ = [
    "APP_MODULE",
    "PortInUse",
    "check_port_free",
    "child_environment",
    "ensure_admin",
    "ensure_schema",
    "prepare_app_root",
    "register",
    "serve",
    "setup_lock",
]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
APP_MODULE = PROJECT_ROOT / "chat_app" / "app.py"
# What Chainlit reads from its app root, kept in the project (committed).
APP_ROOT_LINKS = {
    ".chainlit": PROJECT_ROOT / ".chainlit",
    "chainlit.md": PROJECT_ROOT / "chainlit.md",
    "public": PROJECT_ROOT / "chat_app" / "public",
}


# Held while the schema and the first admin are prepared ("kb" + 1).
_SETUP_LOCK_KEY = 0x6B620001


class PortInUse(KbError):
    """Another process listens on the port `kb serve` was asked to use."""


def prepare_app_root(settings: Settings, *, port: int) -> Path:
    """Chainlit's app root for this data directory and port: links to the project's
    config, welcome page and assets, plus the instance's own `.files/` (uploads in
    flight).

    One root per server because Chainlit deletes `<root>/.files` when it stops: two
    servers sharing a root would delete each other's uploads. Two servers never
    share a port, and a restart on the same port reuses its root.
    """
    root = settings.resolved_data_dir / "chainlit" / f"port-{port}"
    root.mkdir(parents=True, exist_ok=True)
    for name, target in APP_ROOT_LINKS.items():
        link = root / name
        if link.is_symlink() and link.resolve() != target.resolve():
            link.unlink()
        if target.exists() and not link.exists():
            link.symlink_to(target, target_is_directory=target.is_dir())
    return root


@contextlib.contextmanager
def setup_lock(engine: Engine) -> Iterator[None]:
    """One process at a time prepares the database (schema, first admin): two
    `kb serve` starting together on a fresh directory would both migrate."""
    with engine.connect() as conn:
        conn.execute(sa.select(sa.func.pg_advisory_lock(_SETUP_LOCK_KEY)))
        conn.commit()
        try:
            yield
        finally:
            conn.execute(sa.select(sa.func.pg_advisory_unlock(_SETUP_LOCK_KEY)))
            conn.commit()


def ensure_schema(services: Services) -> None:
    """At head already, or migrated now when the database is our embedded one."""
    try:
        check_schema(services.engine)
        return
    except SchemaOutOfDate:
        if services.embedded is None:
            raise
    from db.setup_checks import run_setup
    from retrieval.embeddings import model_dimension

    console.print("Preparing the embedded database (first run)…")
    report = run_setup(
        services.engine, embedding_dimension=model_dimension(services.settings.embedding_model)
    )
    if not report.ok:
        failed = "; ".join(f"{c.name}: {c.detail}" for c in report.checks if not c.ok)
        raise SchemaOutOfDate(
            f"Setting up the embedded database failed ({failed}).",
            hint="Run `kb doctor` for details.",
        )


def ensure_admin(services: Services) -> str | None:
    """Create the first admin on a database without users; returns a generated password
    (None when KB_ADMIN_PASSWORD was used or users exist)."""
    settings = services.settings
    with Session(services.engine) as session:
        if session.scalar(select(func.count()).select_from(User)):
            return None
        configured = settings.admin_password.get_secret_value() if settings.admin_password else None
        password = configured or secrets.token_urlsafe(12)
        add_user(
            session=session,
            identifier=settings.admin_user,
            password=password,
            display_name="Administrator",
            is_admin=True,
        )
        session.commit()
    return None if configured else password


def child_environment(settings: Settings, *, auth_secret: str, port: int) -> dict[str, str]:
    """The app's environment: ours, plus what Chainlit needs, minus what misleads it."""
    env = dict(os.environ)
    # CI=true puts Chainlit in --ci mode (fake OpenAI key); DEBUG turns on its debug mode.
    # CHAINLIT_ROOT_PATH would move Chainlit's routes under a prefix while kb's own routes
    # and the security middleware's path rules stay at the root (README, Running at scale).
    for name in ("CI", "DEBUG", "CHAINLIT_ROOT_PATH"):
        env.pop(name, None)
    env["CHAINLIT_AUTH_SECRET"] = auth_secret
    env["CHAINLIT_APP_ROOT"] = str(prepare_app_root(settings, port=port))
    env["KB_DATA_DIR"] = str(settings.resolved_data_dir)
    if settings.public_url:  # Chainlit builds OAuth redirect URLs from it
        env["CHAINLIT_URL"] = settings.public_url
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _listener(port: int) -> str:
    """Who listens on `port`, as "pid N: command", or "" when unknown."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                if conn.pid is None:
                    return ""
                command = " ".join(psutil.Process(conn.pid).cmdline())[:120]
                return f"pid {conn.pid}: {command}"
    except (psutil.Error, OSError):
        return ""
    return ""


def check_port_free(host: str, port: int) -> None:
    """Fail with one line (naming the listener) when `host:port` is taken."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError:
            who = _listener(port)
            raise PortInUse(
                f"Port {port} on {host} is already in use" + (f" ({who})." if who else "."),
                hint="Stop that process or choose another port with --port.",
            ) from None


def serve(
    port: int | None = typer.Option(None, help="Port to listen on (default: KB_PORT or 8000)."),
    host: str | None = typer.Option(None, help="Interface (default: KB_HOST or 127.0.0.1)."),
) -> None:
    """Start the chat web app (Chainlit) with the resolved settings.

    On the embedded default a fresh machine needs nothing else: the database is
    created and migrated, and an admin account is made (its password is printed once).
    """
    settings = load_settings()
    host = host or settings.host
    port = port or settings.port
    check_port_free(host, port)
    services = open_services(settings, require_schema=False)
    try:
        with setup_lock(services.engine):
            ensure_schema(services)
            password = ensure_admin(services)
        auth_secret = settings.persistent_secret("chainlit_auth", settings.chainlit_auth_secret)
        if password:
            console.print(
                f"Created the admin account [bold]{settings.admin_user}[/] with password "
                f"[bold]{password}[/]\n  It is shown only this once: change it with "
                f"`kb users set-password {settings.admin_user}`.",
                highlight=False,
            )
        elif settings.admin_password is not None:
            console.print(
                f"Admin account [bold]{settings.admin_user}[/] ready (KB_ADMIN_PASSWORD)."
            )
        services.engine.dispose()  # the app opens its own pool
        workers = settings.workers
        console.print(
            f"Serving on http://{host}:{port} with {workers} job worker(s) (Ctrl+C to stop)"
        )
        command = [
            sys.executable,
            "-m",
            "chainlit",
            "run",
            str(APP_MODULE),
            "--headless",
            "--host",
            host,
            "--port",
            str(port),
        ]
        worker = [sys.executable, "-m", "chat_app.cli", "worker"]
        code = _run_until_stopped(
            command,
            env=child_environment(settings, auth_secret=auth_secret, port=port),
            helpers=[worker] * workers,
        )
    finally:
        services.close()
    if code not in (0, -signal.SIGINT, -signal.SIGTERM, 130):
        raise typer.Exit(code)


def _run_until_stopped(
    command: list[str], *, env: dict[str, str], helpers: list[list[str]] | None = None
) -> int:
    """Run the app (and its helper processes, the job workers) and pass Ctrl+C / SIGTERM
    on to each exactly once.

    Children get their own session so a terminal's Ctrl+C reaches only us; we forward
    it, wait for a graceful shutdown, and only then release the embedded server.
    Without this a service manager's SIGTERM would kill this process alone and leave
    the app and PostgreSQL running. When the app ends, the workers are stopped too
    (a running job gets its grace period, then goes back to the queue).
    """
    dies_with = _dies_with(os.getpid())
    app = subprocess.Popen(command, env=env, start_new_session=True, preexec_fn=dies_with)
    children = [app] + [
        subprocess.Popen(helper, env=env, start_new_session=True, preexec_fn=dies_with)
        for helper in helpers or []
    ]

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = app.wait()
        for child in children[1:]:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children[1:]:
            try:
                child.wait(timeout=SHUTDOWN_GRACE_S + 30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        return code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


_PR_SET_PDEATHSIG = 1


def _dies_with(parent: int) -> Callable[[], None] | None:
    """A pre-exec hook making the child receive SIGTERM when `parent` dies, however it
    dies (SIGKILL included), so it shuts down cleanly instead of keeping the port."""
    if not sys.platform.startswith("linux"):
        return None

    def hook() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the hook ran
            os.kill(os.getpid(), signal.SIGTERM)

    return hook


def register(app: typer.Typer) -> None:
    app.command()(serve)
