"""`kb ingest PATH... --user LOGIN [--space NAME] [--no-wait]`: index files as jobs.

Each file becomes one job (its bytes are stored in PostgreSQL with it), so any
number of workers share a folder's files. The command waits with a progress bar and
prints a summary table, or with `--no-wait` prints the job ids and returns.
"""

from __future__ import annotations

import typer
from rich.table import Table

from chat_app.cli.context import cli_services, space_for, user_id_for
from chat_app.cli.job_wait import wait_with_progress
from chat_app.cli.output import console, err_console
from db.jobs import JobRow
from db.spaces import require_role
from ingest.files import FileResult, FileToIngest, discover_files

_STATUS_STYLE = {
    "indexed": "green",
    "updated": "cyan",
    "unchanged": "dim",
    "error": "bold red",
    "cancelled": "yellow",
}


def ingest(
    paths: list[str] = typer.Argument(
        ..., help="Files, folders (searched recursively) or glob patterns such as 'docs/**/*.md'."
    ),
    user: str = typer.Option(..., "--user", "-u", help="Login of the user who adds them."),
    space: str | None = typer.Option(
        None, "--space", help="A shared space the user is an editor of (default: personal)."
    ),
    wait: bool = typer.Option(
        True, "--wait/--no-wait", help="Wait for the jobs (default), or print their ids and return."
    ),
) -> None:
    """Parse, split, embed and index files into a user's personal space (or --space).

    Every file is queued as a job and run by the workers (`kb worker`, or the one
    `kb serve` starts); with none running, this command runs them itself. Unchanged
    files cost nothing (no embedding, no writes); changed files replace their old
    chunks. A file that fails is reported and leaves the database as it was; the
    others go on. Exit code 1 when any file failed.
    """
    with cli_services() as services:
        user_id = user_id_for(services, user)
        target = space_for(services, user_id, space)
        require_role(target, "editor", action="add sources")
        found = discover_files(paths)
        for note in found.notes:
            console.print(f"[dim]{note}[/]", highlight=False)
        if not found.files and not found.errors:
            console.print("No supported files found.")
            raise typer.Exit(0)
        results: list[FileResult] = list(found.errors)
        limit = services.settings.max_file_bytes
        queue = services.job_queue()
        job_ids: list[int] = []
        for item in found.files:
            refused = _too_large(item, limit)
            if refused is not None:
                results.append(refused)
                continue
            job_ids.append(
                queue.enqueue_file(
                    user_id=user_id,
                    space_id=target.id,
                    source_id=item.source_id,
                    data=item.path.read_bytes(),
                    origin="cli",
                )
            )
        if not wait:
            console.print(
                f"Queued {len(job_ids)} job(s): {' '.join(map(str, job_ids))}\n"
                "Follow them with `kb jobs list` or `kb jobs show ID`.",
                highlight=False,
            )
            for result in results:
                err_console.print(f"[bold red]Error:[/] {result.error}", highlight=False)
            raise typer.Exit(1 if results else 0)
        if job_ids:
            rows = wait_with_progress(services, job_ids, what="Ingesting")
            results += [_as_result(rows[i]) for i in job_ids if i in rows]
    _print_summary(results)
    failed = [r for r in results if r.status in ("error", "cancelled")]
    for result in failed:
        err_console.print(f"[bold red]Error:[/] {result.error}", highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


def _too_large(item: FileToIngest, limit: int) -> FileResult | None:
    # Refused before its bytes are read and stored (the worker would refuse it too).
    try:
        size = item.path.stat().st_size
    except OSError as exc:
        error = f"{item.source_id} cannot be read ({exc.strerror})."
        return FileResult(item.source_id, item.source_id, "error", error=error)
    if size <= limit:
        return None
    error = f"{item.source_id} is {size / 2**20:.1f} MB, over the {limit / 2**20:g} MB limit."
    return FileResult(item.source_id, item.source_id, "error", error=error)


def _as_result(row: JobRow) -> FileResult:
    """A finished job's outcome as the summary shows it."""
    name = row.source_id or row.title
    if row.status == "done":
        r = row.result
        return FileResult(
            name=name,
            source_id=name,
            status=r.get("status", row.phase),
            chunks=int(r.get("chunks", 0)),
            added=int(r.get("added", 0)),
            deleted=int(r.get("deleted", 0)),
            skipped=int(r.get("skipped", 0)),
        )
    status = "cancelled" if row.status == "cancelled" else "error"
    error = row.error or ("cancelled" if status == "cancelled" else f"{name}: failed")
    return FileResult(name=name, source_id=name, status=status, error=error)  # type: ignore[arg-type]


def _print_summary(results: list[FileResult]) -> None:
    table = Table(title="Ingest summary")
    table.add_column("file", overflow="fold")
    table.add_column("status", no_wrap=True)
    for number in ("chunks", "added", "deleted"):
        table.add_column(number, justify="right", no_wrap=True)
    table.add_column("error")
    for r in results:
        style = _STATUS_STYLE.get(r.status, "")
        table.add_row(
            r.source_id,
            f"[{style}]{r.status}[/]",
            str(r.chunks),
            str(r.added),
            str(r.deleted),
            _short(r.error),
        )
    console.print(table)
    counts = {s: sum(r.status == s for r in results) for s in _STATUS_STYLE}
    console.print(
        ", ".join(f"{n} {status}" for status, n in counts.items() if n)
        + f" ({len(results)} files)",
        highlight=False,
    )


def _short(error: str | None, width: int = 32) -> str:
    # The table keeps one line per file; the full error lines follow the table.
    if not error:
        return ""
    return error if len(error) <= width else error[: width - 1].rstrip() + "…"


def register(app: typer.Typer) -> None:
    app.command()(ingest)
