"""`kb users add|list|disable|enable|set-password|delete`.

Disabling a user, changing a password and deleting a user end the user's open
sessions: a browser still logged in gets the login page at its next request."""

from __future__ import annotations

import typer
from rich.table import Table
from sqlalchemy.orm import Session

from chat_app.cli.context import cli_services
from chat_app.cli.output import console
from db import users as repo
from db.errors import InvalidInput

app = typer.Typer(help="Manage the people who can log in.", no_args_is_help=True)


def _password(value: str | None) -> str:
    return value or typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@app.command("add")
def add(
    identifier: str = typer.Argument(..., help="Login: a user name or an email address."),
    password: str | None = typer.Option(None, help="Prompted for when omitted."),
    name: str | None = typer.Option(None, "--name", help="Display name."),
    admin: bool = typer.Option(False, "--admin", help="Give administrator rights."),
) -> None:
    """Add a user (passwords are stored as argon2 hashes)."""
    with cli_services() as services, Session(services.engine) as session:
        user = repo.add_user(
            session=session,
            identifier=identifier,
            password=_password(password),
            display_name=name,
            is_admin=admin,
        )
        session.commit()
        console.print(f"Added user [bold]{user.identifier}[/] ({user.id}).")


@app.command("list")
def list_() -> None:
    """List users."""
    with cli_services() as services, Session(services.engine) as session:
        table = Table("login", "name", "active", "admin", "created")
        for u in repo.list_users(session=session):
            table.add_row(
                u.identifier,
                u.display_name or "",
                "yes" if u.is_active else "[red]no[/]",
                "yes" if u.is_admin else "",
                u.created_at.strftime("%Y-%m-%d %H:%M"),
            )
        console.print(table)


def _set_active(identifier: str, *, active: bool) -> None:
    with cli_services() as services, Session(services.engine) as session:
        repo.set_active(session=session, identifier=identifier, active=active)
        session.commit()
    console.print(f"{'Enabled' if active else 'Disabled'} {identifier}.")


@app.command("disable")
def disable(identifier: str) -> None:
    """Refuse further logins and end open sessions (data is kept)."""
    _set_active(identifier, active=False)


@app.command("enable")
def enable(identifier: str) -> None:
    """Allow a disabled user to log in again."""
    _set_active(identifier, active=True)


@app.command("set-password")
def set_password(
    identifier: str, password: str | None = typer.Option(None, help="Prompted for when omitted.")
) -> None:
    """Replace a user's password (ends the user's open sessions)."""
    with cli_services() as services, Session(services.engine) as session:
        repo.set_password(session=session, identifier=identifier, password=_password(password))
        session.commit()
        console.print(f"Password of {identifier} changed.")


@app.command("delete")
def delete(
    identifier: str,
    yes: bool = typer.Option(False, "--yes", help="Confirm: this cannot be undone."),
) -> None:
    """Delete a user with everything that is theirs: chats, attachments, indexed
    documents, Notion connection, usage logs, sessions."""
    if not yes:
        raise InvalidInput(
            f"Deleting {identifier} removes their chats, attachments and documents for good.",
            hint=f"Run `kb users delete {identifier} --yes` to confirm "
            f"(or `kb users disable {identifier}` to keep the data).",
        )
    with cli_services() as services, Session(services.engine) as session:
        deleted = repo.delete_user(session=session, identifier=identifier)
        session.commit()
    console.print(
        f"Deleted {deleted.identifier}: {deleted.chats} chats, "
        f"{deleted.attachments} attachments, and everything else of theirs."
    )
