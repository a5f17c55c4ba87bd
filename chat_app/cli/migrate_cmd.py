"""`kb migrate`: bring the legacy SQLite database and Qdrant vectors across, verified."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from chat_app.cli.context import cli_services
from chat_app.cli.output import console, err_console
from db.errors import InvalidInput

if TYPE_CHECKING:
    from ingest.legacy import BatchDone, MigrationReport

#: Exit code when the migration ran but its verification failed.
EXIT_VERIFICATION_FAILED = 3


def migrate(
    sqlite: Path = typer.Option(..., "--sqlite", help="The legacy app's SQLite database file."),
    qdrant_url: str | None = typer.Option(
        None, "--qdrant-url", help="Legacy Qdrant server, e.g. http://localhost:6333."
    ),
    qdrant_path: Path | None = typer.Option(
        None, "--qdrant-path", help="Legacy Qdrant local-mode folder (QdrantClient(path=...))."
    ),
    collection: str = typer.Option("knowledgebase", "--collection", help="Qdrant collection."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Read and validate everything; write nothing."
    ),
    reembed: bool = typer.Option(
        False, "--reembed", help="Embed the chunk texts again instead of copying the vectors."
    ),
    batch_size: int = typer.Option(500, "--batch-size", min=1, help="Rows per transaction."),
    show_issues: int = typer.Option(
        50, "--show-issues", min=0, help="How many bad rows to list (all are counted)."
    ),
) -> None:
    """Migrate users, conversations, usage logs, Notion history and vectors from the old app.

    The source is only read. Re-running is safe: finished rows are found by their
    legacy keys and left alone, so an interrupted run is completed by running the
    same command again. Without --qdrant-url/--qdrant-path only SQLite is moved.
    Exit codes: 0 verified, 1 error, 3 migrated but verification failed.
    Roll back with `kb db reset --yes` (or `kb db restore` of a backup taken before).
    """
    from ingest.legacy import MigrationOptions, migrate_legacy

    if qdrant_url and qdrant_path:
        raise InvalidInput(
            "Both --qdrant-url and --qdrant-path were given.", hint="Pass only one Qdrant source."
        )
    options = MigrationOptions(
        sqlite_path=sqlite,
        qdrant_url=qdrant_url,
        qdrant_path=qdrant_path,
        collection=collection,
        dry_run=dry_run,
        reembed=reembed,
        batch_size=batch_size,
    )
    with (
        cli_services() as services,
        Progress(
            TextColumn("{task.description:<14}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
        ) as progress,
    ):
        tasks: dict[str, TaskID] = {}

        def on_batch(event: BatchDone) -> None:
            if event.phase not in tasks:
                tasks[event.phase] = progress.add_task(event.phase, total=event.total)
            progress.update(tasks[event.phase], completed=event.done, total=event.total)

        report = migrate_legacy(
            engine=services.engine,
            options=options,
            embeddings=lambda: services.embeddings,
            on_batch=on_batch,
        )
        for task in progress.tasks:
            if task.total is not None:
                progress.update(task.id, completed=task.total)
    print_report(report, show_issues=show_issues)
    if not report.ok:
        raise typer.Exit(EXIT_VERIFICATION_FAILED)


def print_report(report: MigrationReport, *, show_issues: int = 50) -> None:
    title = "Dry run: what a real run would write" if report.dry_run else "Migration report"
    table = Table(title=title)
    table.add_column("source")
    table.add_column("target")
    for name in ("read", "written", "present", "skipped"):
        table.add_column(name, justify="right")
    for t in report.tables:
        table.add_row(
            t.source,
            t.target,
            str(t.read),
            str(t.written),
            str(t.present),
            f"[yellow]{t.skipped}[/]" if t.skipped else "0",
        )
    console.print(table)

    issues = report.issues
    if issues and show_issues:
        bad = Table(title=f"Bad or repaired rows ({len(issues)})")
        for name in ("table", "id", "reason", "rule"):
            bad.add_column(name, overflow="fold")
        for issue in issues[:show_issues]:
            bad.add_row(issue.table, issue.row_id, issue.reason, issue.action)
        console.print(bad)
        if len(issues) > show_issues:
            console.print(f"... and {len(issues) - show_issues} more (--show-issues N).")

    checks = Table(title="Vector verification")
    checks.add_column("check")
    checks.add_column("result", justify="right")
    checks.add_column("detail")
    checks.add_row("vectors", "", report.vector_mode)
    if report.texts_embedded:
        checks.add_row("texts embedded", str(report.texts_embedded), "")
    if report.vector_checks:
        good = sum(c.ok for c in report.vector_checks)
        worst = min(report.vector_checks, key=lambda c: c.cosine)
        checks.add_row(
            "stored = source",
            f"{good}/{len(report.vector_checks)}",
            f"min cosine {worst.cosine:.6f}, "
            f"max |diff| {max(c.max_abs_diff for c in report.vector_checks):.2e} "
            f"(vs {worst.reference})",
        )
    if report.neighbour_checks:
        good = sum(c.ok for c in report.neighbour_checks)
        k = max(len(c.qdrant_ids) for c in report.neighbour_checks)
        checks.add_row(
            "same top-k",
            f"{good}/{len(report.neighbour_checks)}",
            f"exact top-{k} per user: Qdrant vs pgvector",
        )
    console.print(checks)
    for note in report.notes:
        console.print(f"[dim]note: {note}[/]", highlight=False)
    if report.ok:
        console.print("[green]Verification passed.[/]")
    else:
        for failure in report.failures:
            err_console.print(f"[bold red]Verification failed:[/] {failure}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(migrate)
