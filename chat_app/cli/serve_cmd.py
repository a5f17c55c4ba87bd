"""`kb serve`: prepare what the web app needs, then run Chainlit on `chat_app/app.py`
and `KB_WORKERS` job workers (`kb worker`) beside it.

Before starting the server: the schema (migrated here on the embedded default;
an external database must have been set up with `kb setup`), the Chainlit auth
secret (generated once, kept in the data directory), and a first admin account on
a database without users. The app and worker processes get their settings through
the environment they inherit, like every other entry point. The web process never
embeds documents: uploads are jobs, and the workers are separate processes (at a
lower CPU priority), so indexing a large file does not slow anyone's questions.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import typer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from chat_app.cli.output import console
from chat_app.jobs.runner import SHUTDOWN_GRACE_S
from chat_app.services import Services, open_services
from chat_app.settings import Settings, load_settings
from db.errors import SchemaOutOfDate
from db.models import User
from db.schema import check_schema
from db.users import add_user

__all__ = [
    "APP_MODULE",
    "child_environment",
    "ensure_admin",
    "ensure_schema",
    "prepare_app_root",
    "register",
    "serve",
]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
APP_MODULE = PROJECT_ROOT / "chat_app" / "app.py"
# What Chainlit reads from its app root, kept in the project (committed).
APP_ROOT_LINKS = {
    ".chainlit": PROJECT_ROOT / ".chainlit",
    "chainlit.md": PROJECT_ROOT / "chainlit.md",
    "public": PROJECT_ROOT / "chat_app" / "public",
}


def prepare_app_root(settings: Settings) -> Path:
    """Chainlit's app root for this data directory: links to the project's config,
    welcome page and assets, plus the instance's own `.files/` (uploads in flight).

    One root per data directory because Chainlit deletes `<root>/.files` when it
    stops: two servers sharing a root would delete each other's uploads.
    """
    root = settings.resolved_data_dir / "chainlit"
    root.mkdir(parents=True, exist_ok=True)
    for name, target in APP_ROOT_LINKS.items():
        link = root / name
        if link.is_symlink() and link.resolve() != target.resolve():
            link.unlink()
        if target.exists() and not link.exists():
            link.symlink_to(target, target_is_directory=target.is_dir())
    return root


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


def child_environment(settings: Settings, *, auth_secret: str) -> dict[str, str]:
    """The app's environment: ours, plus what Chainlit needs, minus what misleads it."""
    env = dict(os.environ)
    # CI=true puts Chainlit in --ci mode (fake OpenAI key); DEBUG turns on its debug mode.
    for name in ("CI", "DEBUG"):
        env.pop(name, None)
    env["CHAINLIT_AUTH_SECRET"] = auth_secret
    env["CHAINLIT_APP_ROOT"] = str(prepare_app_root(settings))
    env["KB_DATA_DIR"] = str(settings.resolved_data_dir)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


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
    services = open_services(settings, require_schema=False)
    try:
        ensure_schema(services)
        auth_secret = settings.persistent_secret("chainlit_auth", settings.chainlit_auth_secret)
        password = ensure_admin(services)
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
            env=child_environment(settings, auth_secret=auth_secret),
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
    app = subprocess.Popen(command, env=env, start_new_session=True)
    children = [app] + [
        subprocess.Popen(helper, env=env, start_new_session=True) for helper in helpers or []
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


def register(app: typer.Typer) -> None:
    app.command()(serve)
