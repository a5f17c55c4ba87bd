"""`kb spaces create|list|rename|delete|members|add-member|set-role|remove-member`.

The operator's commands: they act with the database owner's rights, so they can
manage any space (in the chat, only a space's owners and admins can).
"""

from __future__ import annotations

import typer
from rich.table import Table
from sqlalchemy.orm import Session

from chat_app.cli.context import cli_services
from chat_app.cli.output import console
from db import spaces as repo
from db.users import require_user

app = typer.Typer(
    help="Shared spaces: a team's knowledge base, with members and roles.", no_args_is_help=True
)

_ROLE = typer.Option(..., "--role", help="reader (ask), editor (also add sources), owner.")


@app.command("create")
def create(
    name: str = typer.Argument(..., help="The space's name (unique, case-insensitive)."),
    owner: str = typer.Option(..., "--owner", help="Login of its first owner."),
) -> None:
    """Create a shared space with one owner."""
    with cli_services() as services, Session(services.engine) as session:
        person = require_user(session=session, identifier=owner)
        space = repo.create_space(session=session, name=name, owner=person, created_by=None)
        session.commit()
        console.print(f"Created space [bold]{space.name}[/] (owner {person.identifier}).")


@app.command("list")
def list_(
    user: str | None = typer.Option(
        None, "--user", "-u", help="Only the spaces of this user (with their role)."
    ),
) -> None:
    """List shared spaces (or one user's spaces, personal included)."""
    with cli_services() as services, Session(services.engine) as session:
        user_id = require_user(session=session, identifier=user).id if user else None
        spaces = repo.list_spaces(session=session, user_id=user_id)
    columns = ["space", "kind", "members", "sources", "chunks"] + (["role"] if user else [])
    table = Table(*columns)
    for s in spaces:
        row = [s.name, s.kind, str(s.members), str(s.sources), str(s.chunks)]
        table.add_row(*row, *([s.role or ""] if user else []))
    console.print(table)


@app.command("rename")
def rename(
    name: str = typer.Argument(..., help="The space."),
    new_name: str = typer.Argument(..., help="Its new name."),
) -> None:
    """Rename a shared space."""
    with cli_services() as services, Session(services.engine) as session:
        space = repo.rename_space(
            session=session, space=repo.require_space(session=session, name=name), new_name=new_name
        )
        session.commit()
        console.print(f"Renamed {name} to [bold]{space.name}[/].", highlight=False)


@app.command("delete")
def delete(
    name: str = typer.Argument(..., help="The space."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a shared space with everything indexed in it (chunks, files, Notion state)."""
    with cli_services() as services, Session(services.engine) as session:
        space = repo.require_space(session=session, name=name)
        if not yes and not typer.confirm(
            f"Delete {space.name!r} and everything indexed in it?", default=False
        ):
            raise typer.Exit(1)
        repo.delete_space(session=session, space=space)
        session.commit()
    console.print(f"Deleted space {name}.", highlight=False)


@app.command("members")
def members(name: str = typer.Argument(..., help="The space.")) -> None:
    """List a space's members and their roles."""
    with cli_services() as services, Session(services.engine) as session:
        space = repo.require_space(session=session, name=name)
        rows = repo.list_members(session=session, space=space)
    table = Table("login", "name", "role", "since", title=space.name)
    for m in rows:
        table.add_row(m.identifier, m.display_name or "", m.role, f"{m.added_at:%Y-%m-%d}")
    console.print(table)


@app.command("add-member")
def add_member(
    name: str = typer.Argument(..., help="The space."),
    login: str = typer.Argument(..., help="The person's login."),
    role: str = _ROLE,
) -> None:
    """Add a person to a space with a role."""
    with cli_services() as services, Session(services.engine) as session:
        space = repo.require_space(session=session, name=name)
        person = require_user(session=session, identifier=login)
        member = repo.add_member(
            session=session, space=space, user=person, role=role, added_by=None
        )
        session.commit()
        console.print(f"Added {person.identifier} to {space.name} as {member.role}.")


@app.command("set-role")
def set_role(
    name: str = typer.Argument(..., help="The space."),
    login: str = typer.Argument(..., help="The member's login."),
    role: str = _ROLE,
) -> None:
    """Change a member's role (a space keeps at least one owner)."""
    with cli_services() as services, Session(services.engine) as session:
        space = repo.require_space(session=session, name=name)
        person = require_user(session=session, identifier=login)
        member = repo.set_role(session=session, space=space, user=person, role=role)
        session.commit()
        console.print(f"{person.identifier} is now {member.role} of {space.name}.")


@app.command("remove-member")
def remove_member(
    name: str = typer.Argument(..., help="The space."),
    login: str = typer.Argument(..., help="The member's login."),
) -> None:
    """Remove a member; they lose access at their next question."""
    with cli_services() as services, Session(services.engine) as session:
        space = repo.require_space(session=session, name=name)
        person = require_user(session=session, identifier=login)
        repo.remove_member(session=session, space=space, user=person)
        session.commit()
        services.note_writes([person.id])  # read replicas: effective at the next question
        console.print(f"Removed {person.identifier} from {space.name}.")
