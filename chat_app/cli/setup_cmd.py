"""`kb setup` and `kb doctor`."""

from __future__ import annotations

import typer
from rich.table import Table

from chat_app.cli.context import cli_services
from chat_app.cli.output import console
from chat_app.settings import Settings
from db.setup_checks import SetupReport, diagnose, run_setup


def _print(report: SetupReport, title: str) -> None:
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail")
    for check in report.checks:
        table.add_row(check.name, "[green]ok[/]" if check.ok else "[red]FAIL[/]", check.detail)
    console.print(table)


def setup() -> None:
    """Prepare the database (connect, create the vector extension, migrate, self-test)
    and the embedding backend (an ONNX backend exports the model here, once).

    Safe to run again: a database that is ready is left unchanged.
    """
    from retrieval.embeddings import model_dimension

    with cli_services(require_schema=False) as services:
        report = run_setup(
            services.engine, embedding_dimension=model_dimension(services.settings.embedding_model)
        )
        _print(report, "kb setup")
        where = (
            "embedded server in " + str(services.embedded.pgdata)
            if services.embedded
            else "DATABASE_URL"
        )
        console.print(f"Database ready ({where}).")
        if report.ok:
            _prepare_backend(services.settings)
    if not report.ok:
        raise typer.Exit(1)


def _prepare_backend(settings: Settings) -> None:
    """Export an ONNX backend's model now rather than during the first upload."""
    from retrieval.embeddings import load_embeddings

    if settings.embedding_backend == "torch":
        return
    with console.status(f"Preparing the {settings.embedding_backend} embedding backend ..."):
        load_embeddings(
            settings.embedding_model,
            batch_size=settings.embedding_batch_size,
            backend=settings.embedding_backend,
            cache_dir=settings.resolved_models_dir,
        )
    console.print(f"Embedding backend {settings.embedding_backend} ready.")


def doctor() -> None:
    """Print versions (PostgreSQL, pgvector, schema, embedding model and backend), run checks."""
    from retrieval.embeddings import backend_status, model_dimension, resolve_model

    with cli_services(require_schema=False) as services:
        settings = services.settings
        model = resolve_model(settings.embedding_model)
        report = diagnose(services.engine, model=model, model_dimension=model_dimension(model))
        report.add(
            "embedding backend",
            *backend_status(
                settings.embedding_model,
                backend=settings.embedding_backend,
                cache_dir=settings.resolved_models_dir,
            ),
        )
        report.add("database", True, services.engine.url.render_as_string(hide_password=True))
        _print(report, "kb doctor")
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(setup)
    app.command()(doctor)
