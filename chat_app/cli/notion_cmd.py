"""`kb notion connect|sync|status|disconnect --user LOGIN`."""

from __future__ import annotations

import typer
from rich.table import Table

from chat_app.cli.context import cli_services, space_for, space_label, user_id_for
from chat_app.cli.output import console, err_console, progress_bar
from ingest.notion.errors import NotionNotConnected
from ingest.notion.report import SyncProgress, SyncReport
from ingest.notion.service import (
    NotionStatus,
    connect_notion,
    disconnect_notion,
    notion_status,
    sync_notion,
)

app = typer.Typer(
    help="Connect a Notion integration and sync what it can see (incrementally).",
    no_args_is_help=True,
)

_USER = typer.Option(..., "--user", "-u", help="Login of the user (an editor of the space).")
_SPACE = typer.Option(
    None, "--space", help="The shared space of the connection (default: the user's personal space)."
)
_PHASE = {
    "enumerating": "Listing shared pages",
    "removing": "Removing pages gone from Notion",
    "done": "Done",
}


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
def sync(user: str = _USER, space: str | None = _SPACE) -> None:
    """Index new and edited pages, skip unchanged ones, remove pages gone from Notion.

    Exit code 1 when some pages failed (the others are synced; run again to retry).
    """
    with cli_services() as services:
        user_id = user_id_for(services, user)
        where = space_for(services, user_id, space)
        current = notion_status(engine=services.engine, user_id=user_id, space_id=where.id)
        if current is None or not current.connected:  # say so before loading the model
            connect = f"kb notion connect --user {user}" + (
                f" --space {_quoted(space)}" if space else ""
            )
            raise NotionNotConnected(
                f"{space_label(where, user)} has not connected Notion.",
                hint=f"Run `{connect}` first.",
            )
        with console.status("Loading the embedding model..."):
            embeddings = services.embeddings
        with progress_bar() as bar:
            task = bar.add_task("Connecting to Notion", total=None)

            def on_progress(event: SyncProgress) -> None:
                description = _PHASE.get(event.phase) or (event.title or "")[:60]
                bar.update(
                    task, completed=event.done, total=max(event.total, 1), description=description
                )

            report = sync_notion(
                engine=services.engine,
                embeddings=embeddings,
                user_id=user_id,
                space_id=where.id,
                options=services.notion_options(),
                progress=on_progress,
            )
    _print_report(report)
    for error in report.errors:
        err_console.print(f"[bold red]Error:[/] {error}", highlight=False, soft_wrap=True)
    if report.status != "success":
        raise typer.Exit(1)


@app.command("status")
def status(user: str = _USER, space: str | None = _SPACE) -> None:
    """Show the connection (never the token) and the latest sync."""
    with cli_services() as services:
        user_id = user_id_for(services, user)
        where = space_for(services, user_id, space)
        current = notion_status(engine=services.engine, user_id=user_id, space_id=where.id)
    if current is None:
        console.print(
            f"{space_label(where, user)} has not connected Notion. "
            f"Run [bold]kb notion connect --user {user}[/].",
            highlight=False,
        )
        raise typer.Exit(0)
    _print_status(space_label(where, user), current)


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


def _print_report(report: SyncReport) -> None:
    table = Table(show_header=False, title=f"Notion sync: {report.status}")
    failed = f"[red]{report.pages_failed}[/]" if report.pages_failed else "0"
    for name, value in (
        ("pages seen", str(report.pages_seen)),
        ("new", str(report.pages_new)),
        ("updated", str(report.pages_updated)),
        ("unchanged", str(report.pages_unchanged)),
        ("removed", str(report.pages_removed)),
        ("failed", failed),
        ("chunks written", str(report.chunks_written)),
        ("requests", ", ".join(f"{k} {v}" for k, v in sorted(report.requests.items()))),
        ("retries", str(report.retries)),
        ("seconds", f"{report.seconds:.1f}"),
    ):
        table.add_row(name, value)
    console.print(table)


def _print_status(user: str, current: NotionStatus) -> None:
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
    console.print(table)
