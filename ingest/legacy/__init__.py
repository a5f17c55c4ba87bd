"""Legacy migration: the old app's SQLite database and Qdrant vectors -> PostgreSQL.

Layout and rules: docs/legacy-schema.md. Entry point: `migrate_legacy`.
"""

from ingest.legacy.migrate import BatchDone, MigrationOptions, migrate_legacy
from ingest.legacy.report import MigrationReport, NeighbourCheck, RowIssue, TableReport, VectorCheck
from ingest.legacy.sqlite_source import LegacySourceError

__all__ = [
    "BatchDone",
    "LegacySourceError",
    "MigrationOptions",
    "MigrationReport",
    "NeighbourCheck",
    "RowIssue",
    "TableReport",
    "VectorCheck",
    "migrate_legacy",
]
