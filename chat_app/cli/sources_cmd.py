"""`kb sources list|delete --user LOGIN [--space NAME]`: what is indexed in a user's spaces."""

from __future__ import annotations

import typer
from rich.table import Table

from chat_app.cli.context import cli_services, space_for, space_label, user_id_for
from chat_app.cli.job_wait import wait_with_progress
from chat_app.cli.output import console, fail
from db.chunks import list_sources
from db.errors import NotFound
from db.scoped import user_scope
from db.spaces import readable_spaces, require_role

app = typer.Typer(
    help="The sources (files, Notion pages) indexed in a user's spaces.", no_args_is_help=True
)

_USER = typer.Option(..., "--user", "-u", help="Login of the user.")


@app.command("list")
def list_(
    user: str = _USER,
    source_type: str | None = typer.Option(None, "--type", help="Only 'file' or 'notion'."),
    space: str | None = typer.Option(None, "--space", help="Only this shared space."),
) -> None:
    """List the sources of every space the user can read (or one), newest first."""
    with cli_services() as services:
        user_id = user_id_for(services, user)
        with user_scope(services.engine, user_id) as conn:
            spaces = readable_spaces(conn, user_id=user_id)
        if space is not None:
            spaces = [space_for(services, user_id, space)]
        names = {s.id: s.name for s in spaces}
        with user_scope(services.engine, user_id) as conn:
            sources = list_sources(conn, space_ids=list(names), source_type=source_type)
    table = Table("source id", "space", "type", "title", "chunks", "added by", "updated")
    # The id is what `kb sources delete` takes: never wrapped or cut.
    table.columns[0].no_wrap = True
    table.columns[0].min_width = max((len(s.source_id) for s in sources), default=9)
    table.columns[3].overflow = "fold"
    for s in sorted(sources, key=lambda s: (names[s.space_id].lower(), -s.updated_at.timestamp())):
        table.add_row(
            s.source_id,
            names[s.space_id],
            s.source_type,
            s.title or "",
            str(s.chunks),
            s.added_by or "",
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
    space: str | None = typer.Option(
        None, "--space", help="The shared space it is in (default: the user's personal space)."
    ),
) -> None:
    """Remove a source's chunks, records and file (the next ingest re-adds it).

    The removal is a job, queued after any indexing of the same source, so it never
    races an upload of it."""
    with cli_services() as services:
        user_id = user_id_for(services, user)
        where = space_for(services, user_id, space)
        require_role(where, "editor", action="remove sources")
        with user_scope(services.engine, user_id) as conn:
            found = [
                s
                for s in list_sources(conn, space_ids=[where.id], source_type=source_type)
                if s.source_id == source_id
            ]
        if not found:
            raise NotFound(
                f"{space_label(where, user)} has no source {source_id!r}.",
                hint=f"See `kb sources list --user {user}` for the exact ids.",
            )
        queue = services.job_queue()
        job_ids = [
            queue.enqueue_removal(
                user_id=user_id,
                space_id=where.id,
                source_type=s.source_type,
                source_id=s.source_id,
                title=s.source_id,
                origin="cli",
            )
            for s in found
        ]
        rows = wait_with_progress(services, job_ids, what="Removing")
    for row in rows.values():
        if row.status != "done":
            fail(row.error or f"Removing {source_id} did not finish ({row.status}).")
    removed = sum(int(r.result.get("removed", 0)) for r in rows.values())
    console.print(f"Deleted {source_id} ({removed} chunks).", highlight=False)
