"""`kb jobs list|show|retry|cancel`: the background jobs (an operator's view: all of them,
or with `--user` the ones a person sees in the chat's `/jobs`)."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from chat_app.cli.context import cli_services, user_id_for
from chat_app.cli.output import console
from chat_app.jobs.describe import KIND_LABELS, job_line, when
from db import jobs as repo
from db.jobs import JobRow
from db.scoped import user_scope
from db.spaces import readable_spaces

app = typer.Typer(help="Background jobs: indexing, Notion syncs, removals.", no_args_is_help=True)

_STYLE = {
    "queued": "dim",
    "running": "cyan",
    "retrying": "yellow",
    "done": "green",
    "failed": "bold red",
    "cancelled": "yellow",
}


@app.command("list")
def list_(
    user: str | None = typer.Option(
        None, "--user", "-u", help="Only jobs of the spaces this user can read."
    ),
    status: list[str] = typer.Option(
        [], "--status", "-s", help="queued, running, retrying, done, failed or cancelled."
    ),
    limit: int = typer.Option(20, "--limit", "-n", help="How many, newest first."),
) -> None:
    """The newest jobs first, with their state and who asked for them."""
    with cli_services() as services:
        if user is None:
            with services.engine.begin() as conn:
                rows = repo.list_jobs(conn, statuses=status or None, limit=limit)
        else:
            user_id = user_id_for(services, user)
            with user_scope(services.engine, user_id) as conn:
                spaces = readable_spaces(conn, user_id=user_id)
                rows = repo.list_jobs(
                    conn, space_ids=[s.id for s in spaces], statuses=status or None, limit=limit
                )
        workers = services.job_queue().live_workers()
    table = Table("id", "kind", "space", "what", "status", "", "by", "created")
    table.columns[3].overflow = "fold"
    table.columns[5].overflow = "fold"
    for row in rows:
        table.add_row(
            str(row.id),
            KIND_LABELS.get(row.kind, row.kind),
            _space(row),
            row.title,
            f"[{_STYLE.get(row.status, '')}]{row.status}[/]",
            job_line(row),
            row.requested_by_login or ("schedule" if row.origin == "schedule" else ""),
            when(row.created_at),
        )
    console.print(table)
    console.print(f"{len(rows)} jobs shown; {workers} worker(s) running.", highlight=False)


def _space(row: JobRow) -> str:
    if row.space_kind == "personal":
        return "personal"
    return row.space_name or ""


@app.command("show")
def show(job_id: int = typer.Argument(..., help="The id from `kb jobs list`.")) -> None:
    """Everything about one job: state, progress, outcome or the reason it failed."""
    with cli_services() as services:
        row = services.job_queue().get(job_id)
    table = Table(show_header=False, title=f"Job {row.id}")
    for name, value in (
        ("kind", KIND_LABELS.get(row.kind, row.kind)),
        ("what", row.title),
        ("space", f"{row.space_name} ({row.space_kind})"),
        ("asked by", row.requested_by_login or row.origin),
        ("status", f"[{_STYLE.get(row.status, '')}]{row.status}[/]"),
        ("now", job_line(row)),
        ("progress", f"{row.done}/{row.total}" if row.total else ""),
        ("tries", str(row.attempts)),
        ("worker", row.worker or ""),
        ("error", row.error or ""),
        ("created", when(row.created_at)),
        ("started", when(row.started_at)),
        ("finished", when(row.finished_at)),
        ("result", json.dumps(row.result, default=str) if row.result else ""),
    ):
        if value:
            table.add_row(name, value)
    console.print(table)


@app.command("retry")
def retry(job_id: int = typer.Argument(..., help="A failed job's id.")) -> None:
    """Put a failed job back in the queue (an uploaded file is still stored with it)."""
    with cli_services() as services:
        row = services.job_queue().retry(job_id)
    console.print(f"Job {row.id} ({row.title}) is queued again.", highlight=False)


@app.command("cancel")
def cancel(job_id: int = typer.Argument(..., help="A queued or running job's id.")) -> None:
    """Cancel a queued job, or stop a running one (its work is rolled back)."""
    with cli_services() as services:
        row = services.job_queue().cancel(job_id)
    if row.status == "cancelled":
        console.print(f"Job {row.id} ({row.title}) is cancelled.", highlight=False)
    else:
        console.print(
            f"Job {row.id} ({row.title}) is running: asked it to stop; its changes are "
            "rolled back.",
            highlight=False,
        )
