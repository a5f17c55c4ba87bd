"""`kb setup` and `kb doctor`."""

from __future__ import annotations

import typer
from rich.table import Table

from chat_app.cli.context import runtime
from chat_app.cli.output import console
from db.setup import SetupReport, diagnose, run_setup


def _print(report: SetupReport, title: str) -> None:
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail")
    for check in report.checks:
        table.add_row(check.name, "[green]ok[/]" if check.ok else "[red]FAIL[/]", check.detail)
    console.print(table)


def setup() -> None:
    """Prepare the database: connect, create the vector extension, migrate, self-test.

    Safe to run again: a database that is ready is left unchanged.
    """
    from retrieval.embeddings import model_dimension

    with runtime(require_schema=False) as rt:
        report = run_setup(
            rt.engine, embedding_dimension=model_dimension(rt.settings.embedding_model)
        )
        _print(report, "kb setup")
        where = "embedded server in " + str(rt.embedded.pgdata) if rt.embedded else "DATABASE_URL"
        console.print(f"Database ready ({where}).")
    if not report.ok:
        raise typer.Exit(1)


def doctor() -> None:
    """Print versions (PostgreSQL, pgvector, schema, embedding model and backend), run checks."""
    from retrieval.embeddings import backend_status, model_dimension, resolve_model

    with runtime(require_schema=False) as rt:
        model = resolve_model(rt.settings.embedding_model)
        report = diagnose(rt.engine, model=model, model_dimension=model_dimension(model))
        report.add(
            "embedding backend",
            *backend_status(
                rt.settings.embedding_model,
                backend=rt.settings.embedding_backend,
                cache_dir=rt.settings.resolved_models_dir,
            ),
        )
        report.add("database", True, rt.engine.url.render_as_string(hide_password=True))
        _print(report, "kb doctor")
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(setup)
    app.command()(doctor)
