"""`migrate_legacy`: the legacy SQLite database (and Qdrant vectors) -> our PostgreSQL.

Phases run in dependency order (users, threads, messages, usage logs, Notion
history, chunks) and each commits batch by batch, so an interrupted run keeps
what it finished; ids derived from legacy natural keys plus ON CONFLICT make a
re-run finish the job without duplicates and change nothing after a success.
The source is opened read-only. A dry run pushes everything through one
transaction that is rolled back. The report ends with the vector checks.
"""

from __future__ import annotations

from collections.abc import Callable

from langchain_core.embeddings import Embeddings
from sqlalchemy.engine import Engine

from db.errors import SchemaOutOfDate
from db.schema import vector_dimension
from ingest.legacy.accounts import migrate_users
from ingest.legacy.conversations import migrate_messages, migrate_sessions
from ingest.legacy.qdrant_source import LegacyQdrant
from ingest.legacy.records import migrate_notion, migrate_usage
from ingest.legacy.report import MigrationReport, check_neighbours, check_vectors
from ingest.legacy.sqlite_source import LegacySqlite
from ingest.legacy.state import BatchDone, MigrationOptions, RunState
from ingest.legacy.target import Target
from ingest.legacy.vectors import migrate_chunks

__all__ = ["BatchDone", "MigrationOptions", "migrate_legacy"]

EmbeddingsSource = Embeddings | Callable[[], Embeddings]


def _lazy(embeddings: EmbeddingsSource | None) -> Callable[[], Embeddings] | None:
    """Models load slowly: the CLI passes a factory, called only if re-embedding happens."""
    if embeddings is None or (callable(embeddings) and not isinstance(embeddings, Embeddings)):
        return embeddings
    model = embeddings
    return lambda: model


def migrate_legacy(
    *,
    engine: Engine,
    options: MigrationOptions,
    embeddings: EmbeddingsSource | None = None,
    on_batch: Callable[[BatchDone], None] | None = None,
) -> MigrationReport:
    """Run every phase and verify; `on_batch` is told after each committed batch.

    An exception from `on_batch` stops the run at that point (committed batches stay),
    which is how progress bars cancel and how tests simulate an interruption.
    """
    dimension = vector_dimension(engine)
    if dimension is None:
        raise SchemaOutOfDate(
            "The target database has no document_chunks table.", hint="Run `kb setup` first."
        )
    report = MigrationReport(dry_run=options.dry_run)
    target = Target(engine, dry_run=options.dry_run)
    embed = _lazy(embeddings)
    with LegacySqlite(options.sqlite_path) as source, target.session():
        for table in ("users", "chat_sessions", "chat_messages", "usage_logs", "notion_syncs"):
            if not source.has_table(table):
                report.notes.append(f"legacy table {table} is absent: nothing to migrate from it")
            elif missing := source.missing_columns(table):
                report.notes.append(
                    f"legacy {table} lacks columns {', '.join(missing)}: read as empty"
                )
        state = RunState(options=options, target=target, report=report, on_batch=on_batch)
        migrate_users(source, state)
        migrate_sessions(source, state)
        migrate_messages(source, state)
        migrate_usage(source, state)
        migrate_notion(source, state)
        if options.qdrant_url is None and options.qdrant_path is None:
            return report
        with LegacyQdrant(
            url=options.qdrant_url, path=options.qdrant_path, collection=options.collection
        ) as qdrant:
            phase = migrate_chunks(qdrant, state, dimension=dimension, embeddings=embed)
            if options.dry_run and not report.vector_mode.startswith("copied"):
                report.notes.append("dry run: vector checks need the embedded chunks; not run")
                return report
            reembedded = not report.vector_mode.startswith("copied")
            state.announce("verification", len(phase.sample))
            report.vector_checks = check_vectors(
                target=target,
                qdrant=qdrant,
                sample=phase.sample,
                embeddings=embed() if reembedded and embed is not None else None,
            )
            if reembedded:
                report.notes.append(
                    "re-embedded vectors differ from Qdrant's by design: nearest-neighbour "
                    "comparison with Qdrant not applicable"
                )
            else:
                report.neighbour_checks = check_neighbours(
                    target=target,
                    qdrant=qdrant,
                    queries=phase.sample[: options.neighbour_sample],
                    payload_users=phase.payload_users,
                    skipped_points=phase.skipped_points,
                    k=options.neighbour_k,
                )
    return report
