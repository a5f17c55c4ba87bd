"""`kb db url|shell|backup|restore`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import typer

from chat_app.cli.context import cli_services
from chat_app.cli.output import console
from db import pg_client
from db.engine import mask_url

app = typer.Typer(
    help="The database: where it is, a SQL shell, backup and restore.", no_args_is_help=True
)


@app.command("url")
def url(
    show_password: bool = typer.Option(False, "--show-password", help="Print the password too."),
) -> None:
    """Print the active connection URL (password masked)."""
    with cli_services(require_schema=False) as services:
        print(services.database_url if show_password else mask_url(services.database_url))


@app.command("shell")
def shell() -> None:
    """Open psql on the database (the embedded server ships psql)."""
    # psql runs while this process holds the embedded server open (not exec: the
    # server would stop when our handle is released, or never stop if exec skipped it).
    with cli_services(require_schema=False) as services:
        command, env = pg_client.client_command("psql", services.database_url)
        code = subprocess.call(command, env=env)
    raise typer.Exit(code)


@app.command("backup")
def backup(file: Path = typer.Argument(..., help="Where to write the dump.")) -> None:
    """Dump the whole database (users, chats, vectors, sync state) to FILE."""
    with cli_services(require_schema=False) as services:
        pg_client.backup(services.database_url, file)
    console.print(f"Backed up to {file} ({file.stat().st_size:,} bytes).")


@app.command("restore")
def restore(
    file: Path = typer.Argument(..., help="A dump written by `kb db backup`."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """Replace the database's contents with FILE."""
    if not yes:
        typer.confirm("This replaces every table in the database. Continue?", abort=True)
    with cli_services(require_schema=False) as services:
        pg_client.restore(services.database_url, file)
    console.print(f"Restored from {file}.")


@app.command("reset")
def reset(
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """Drop every kb table and recreate the schema empty (undoes `kb migrate`).

    The database, the vector extension and the vector dimension are kept.
    Back up first with `kb db backup FILE` if you may want the data back.
    """
    from db.reset import reset_database

    if not yes:
        typer.confirm("This deletes every user, chat and document. Continue?", abort=True)
    with cli_services(require_schema=False) as services:
        reset_database(services.engine)
    console.print("Database reset: the schema is empty and at the newest revision.")
