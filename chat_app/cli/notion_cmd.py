"""`kb notion connect|sync|status|disconnect --user LOGIN`."""

from __future__ import annotations

import typer
from rich.table import Table

from chat_app.cli.context import cli_services, space_for, space_label, user_id_for
from chat_app.cli.job_wait import wait_with_progress
from chat_app.cli.output import console, err_console
from chat_app.jobs.schedule import NotionSchedule, notion_schedule
from db.jobs import JobRow
from db.spaces import require_role
from ingest.notion.errors import NotionNotConnected
from ingest.notion.service import (
    NotionStatus,
    connect_notion,
    disconnect_notion,
    notion_status,
)

app = typer.Typer(
    help="Connect a Notion integration and sync what it can see (incrementally).",
    no_args_is_help=True,
)

_USER = typer.Option(..., "--user", "-u", help="Login of the user (an editor of the space).")
_SPACE = typer.Option(
    None, "--space", help="The shared space of the connection (default: the user's personal space)."
)


@app.command("connect")
def connect(
    user: str = _USER,
    token: str | None = typer.Option(
        None,
        "--token",
        help="Internal Integration Secret (ntn_...). Default: KB_NOTION_TOKEN, else prompted.",
    ),
    space: str | None = _SPACE,
) -> None:
    """Check an integration token with Notion and store it encrypted for the space."""
    with cli_services() as services:
        user_id = user_id_for(services, user)
        where = space_for(services, user_id, space)
        settings = services.settings
        if not token and settings.notion_token is not None:
            token = settings.notion_token.get_secret_value()
        if not token:
            token = typer.prompt("Notion integration secret", hide_input=True)
        status = connect_notion(
            engine=services.engine,
            user_id=user_id,
            space_id=where.id,
            token=token,
            options=services.notion_options(),
        )
    again = f"kb notion sync --user {user}" + (f" --space {_quoted(space)}" if space else "")
    console.print(
        f"Connected [bold]{space_label(where, user)}[/] to Notion workspace "
        f"[bold]{status.workspace_name or '?'}[/].\nShare pages with the integration "
        f"(page menu > Connections), then run [bold]{again}[/].",
        highlight=False,
    )


def _quoted(name: str) -> str:
    return f'"{name}"' if " " in name else name


@app.command("sync")
def sync(
    user: str = _USER,
    space: str | None = _SPACE,
    wait: bool = typer.Option(
        True, "--wait/--no-wait", help="Wait for the sync (default), or print its job id."
    ),
) -> None:
    """Index new and edited pages, skip unchanged ones, remove pages gone from Notion.

    The sync is a job (the same one the schedule and the chat's "Re-sync now" queue);
    when one is already waiting, this joins it. Exit code 1 when some pages failed
    (the others are synced; run again to retry) or the sync failed.
    """
    with cli_services() as services:
        user_id = user_id_for(services, user)
        where = space_for(services, user_id, space)
        require_role(where, "editor", action="re-sync Notion")
        current = notion_status(engine=services.engine, user_id=user_id, space_id=where.id)
        if current is None or not current.connected:  # say so before queueing anything
            connect = f"kb notion connect --user {user}" + (
                f" --space {_quoted(space)}" if space else ""
            )
            raise NotionNotConnected(
                f"{space_label(where, user)} has not connected Notion.",
                hint=f"Run `{connect}` first.",
            )
        queued = services.job_queue().enqueue_notion_sync(
            space_id=where.id, requested_by=user_id, origin="cli"
        )
        if not wait:
            joined = " (one was already queued)" if queued.already_queued else ""
            console.print(f"Queued Notion sync job {queued.job_id}{joined}.", highlight=False)
            return
        row = wait_with_progress(services, [queued.job_id], what="Notion sync")[queued.job_id]
    _print_result(row)
    errors = list(row.result.get("errors") or []) if row.status == "done" else []
    for error in errors:
        err_console.print(f"[bold red]Error:[/] {error}", highlight=False, soft_wrap=True)
    if row.status != "done":
        err_console.print(
            f"[bold red]Error:[/] {row.error or row.status}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(1)
    if row.result.get("status") != "success":
        raise typer.Exit(1)


@app.command("status")
def status(user: str = _USER, space: str | None = _SPACE) -> None:
    """Show the connection (never the token) and the latest sync."""
    with cli_services() as services:
        user_id = user_id_for(services, user)
        where = space_for(services, user_id, space)
        current = notion_status(engine=services.engine, user_id=user_id, space_id=where.id)
        schedule = notion_schedule(services, user_id=user_id, space_id=where.id)
    if current is None:
        console.print(
            f"{space_label(where, user)} has not connected Notion. "
            f"Run [bold]kb notion connect --user {user}[/].",
            highlight=False,
        )
        raise typer.Exit(0)
    _print_status(space_label(where, user), current, schedule)


@app.command("disconnect")
def disconnect(
    user: str = _USER,
    keep_content: bool = typer.Option(
        False, "--keep-content", help="Keep the indexed Notion pages searchable."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    space: str | None = _SPACE,
) -> None:
    """Forget the space's Notion token and (unless --keep-content) its Notion chunks."""
    with cli_services() as services:
        user_id = user_id_for(services, user)
        where = space_for(services, user_id, space)
        if not yes and not keep_content:
            typer.confirm(
                f"Remove {space_label(where, user)}'s Notion token and every indexed Notion page?",
                abort=True,
            )
        disconnect_notion(
            engine=services.engine, user_id=user_id, space_id=where.id, keep_content=keep_content
        )
    console.print(
        f"Disconnected {space_label(where, user)} from Notion"
        + (" (indexed pages kept)." if keep_content else "; Notion pages removed.")
    )


def _print_result(row: JobRow) -> None:
    r = row.result
    title = f"Notion sync: {r.get('status', row.status)}"
    table = Table(show_header=False, title=title)
    if row.status == "done":
        failed = r.get("pages_failed", 0)
        for name, value in (
            ("pages seen", r.get("pages_seen", 0)),
            ("new", r.get("pages_new", 0)),
            ("updated", r.get("pages_updated", 0)),
            ("unchanged", r.get("pages_unchanged", 0)),
            ("removed", r.get("pages_removed", 0)),
            ("failed", f"[red]{failed}[/]" if failed else 0),
            ("seconds", r.get("seconds", "")),
        ):
            table.add_row(name, str(value))
    table.add_row("job", str(row.id))
    console.print(table)


def _print_status(user: str, current: NotionStatus, schedule: NotionSchedule) -> None:
    table = Table(show_header=False, title=f"Notion for {user}")
    table.add_row("connected", "yes" if current.connected else "[red]no[/]")
    table.add_row("workspace", current.workspace_name or "")
    if current.connected_at:
        table.add_row("connected at", current.connected_at.strftime("%Y-%m-%d %H:%M"))
    table.add_row("pages indexed", str(current.pages_indexed))
    if current.pages_failed:
        table.add_row("pages failing", f"[red]{current.pages_failed}[/]")
    last = current.last_sync
    if last is None:
        table.add_row("last sync", "never")
    else:
        table.add_row("last sync", f"{last.status} at {last.started_at:%Y-%m-%d %H:%M}")
        table.add_row(
            "last counts",
            f"{last.pages_seen} seen, {last.pages_new} new, "
            f"{last.pages_updated} updated, {last.pages_unchanged} unchanged, "
            f"{last.pages_removed} removed, {last.pages_failed} failed",
        )
        if last.error:
            table.add_row("last error", last.error.splitlines()[0])
    last_run, next_run = (line.split(": ", 1)[1] for line in schedule.lines())
    table.add_row("last run", last_run)
    table.add_row("next run", next_run)
    console.print(table)
