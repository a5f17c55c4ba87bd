"""`kb ingest PATH... --user LOGIN`: index files for one user, with a summary table."""

from __future__ import annotations

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from chat_app.cli.context import runtime, user_id_for
from chat_app.cli.output import console, err_console
from chat_app.ingest_options import ingest_options
from ingest.files import FileResult, discover_files, ingest_files

_STATUS_STYLE = {"indexed": "green", "updated": "cyan", "unchanged": "dim", "error": "bold red"}


def ingest(
    paths: list[str] = typer.Argument(
        ..., help="Files, folders (searched recursively) or glob patterns such as 'docs/**/*.md'."
    ),
    user: str = typer.Option(..., "--user", "-u", help="Login of the user who owns the chunks."),
) -> None:
    """Parse, split, embed and index files for one user.

    Unchanged files cost nothing (no embedding, no writes); changed files replace
    their old chunks. A file that fails is reported and leaves the database as it
    was; the others go on. Exit code 1 when any file failed.
    """
    with runtime() as rt:
        user_id = user_id_for(rt, user)
        found = discover_files(paths)
        for note in found.notes:
            console.print(f"[dim]{note}[/]", highlight=False)
        if not found.files and not found.errors:
            console.print("No supported files found.")
            raise typer.Exit(0)
        options = ingest_options(rt.settings)
        results: list[FileResult] = list(found.errors)
        if found.files:
            with console.status("Loading the embedding model..."):
                embeddings = rt.embeddings
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as progress:
                task = progress.add_task("Ingesting", total=len(found.files))
                results += ingest_files(
                    found.files,
                    engine=rt.engine,
                    embeddings=embeddings,
                    user_id=user_id,
                    options=options,
                    progress=lambda message: progress.update(task, description=message),
                    on_result=lambda _result: progress.advance(task),
                )
                progress.update(task, description="Done")
    _print_summary(results)
    failed = [r for r in results if r.status == "error"]
    for result in failed:
        err_console.print(f"[bold red]Error:[/] {result.error}", highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


def _print_summary(results: list[FileResult]) -> None:
    table = Table(title="Ingest summary")
    table.add_column("file", overflow="fold")
    table.add_column("status", no_wrap=True)
    for number in ("chunks", "added", "deleted"):
        table.add_column(number, justify="right", no_wrap=True)
    table.add_column("error")
    for r in results:
        style = _STATUS_STYLE[r.status]
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
