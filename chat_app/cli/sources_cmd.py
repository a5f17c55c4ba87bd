"""`kb sources list|delete --user LOGIN`: what a user has indexed."""

from __future__ import annotations

import typer
from rich.table import Table

from chat_app.cli.context import cli_services, user_id_for
from chat_app.cli.output import console
from db.chunks import list_sources
from db.errors import NotFound
from db.scoped import user_scope
from ingest.indexing import delete_source

app = typer.Typer(
    help="The sources (files, Notion pages) a user has indexed.", no_args_is_help=True
)

_USER = typer.Option(..., "--user", "-u", help="Login of the user.")


@app.command("list")
def list_(
    user: str = _USER,
    source_type: str | None = typer.Option(None, "--type", help="Only 'file' or 'notion'."),
) -> None:
    """List a user's sources with their chunk counts, newest first."""
    with cli_services() as services:
        user_id = user_id_for(services, user)
        with user_scope(services.engine, user_id) as conn:
            sources = list_sources(conn, user_id=user_id, source_type=source_type)
    table = Table("source id", "type", "title", "chunks", "updated")
    for s in sources:
        table.add_row(
            s.source_id,
            s.source_type,
            s.title or "",
            str(s.chunks),
            s.updated_at.strftime("%Y-%m-%d %H:%M"),
        )
    console.print(table)
    total = sum(s.chunks for s in sources)
    console.print(f"{len(sources)} sources, {total} chunks", highlight=False)


@app.command("delete")
def delete(
    source_id: str = typer.Argument(..., help="The source id shown by `kb sources list`."),
    user: str = _USER,
    source_type: str | None = typer.Option(None, "--type", help="Only 'file' or 'notion'."),
) -> None:
    """Remove a source's chunks and indexing records (the next ingest re-adds it)."""
    with cli_services() as services:
        user_id = user_id_for(services, user)
        removed = delete_source(
            engine=services.engine, user_id=user_id, source_id=source_id, source_type=source_type
        )
    if removed == 0:
        raise NotFound(
            f"{user} has no source {source_id!r}.",
            hint=f"See `kb sources list --user {user}` for the exact ids.",
        )
    console.print(f"Deleted {source_id} ({removed} chunks).", highlight=False)
