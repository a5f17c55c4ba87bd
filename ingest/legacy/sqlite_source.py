"""Read the legacy SQLite database, read-only and defensively.

Columns may be missing or extra and tables may be absent: every row comes back
as a dict with exactly the columns we know (missing ones as None), the extra
ones ignored. The file is opened with `mode=ro`, so the source is never modified.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from db.errors import KbError

__all__ = ["LEGACY_COLUMNS", "LegacySourceError", "LegacySqlite"]

#: The columns the legacy app wrote, per table (see docs/legacy-schema.md).
LEGACY_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("id", "user_id", "email", "hashed_password", "full_name", "is_active", "created_at"),
    "chat_sessions": ("id", "session_id", "user_id", "title", "created_at", "updated_at"),
    "chat_messages": ("id", "session_id", "role", "content", "sources", "created_at"),
    "usage_logs": ("id", "user_id", "action", "details", "tokens_used", "created_at"),
    "notion_syncs": (
        "id",
        "user_id",
        "page_id",
        "page_title",
        "last_synced_at",
        "status",
        "chunks_count",
    ),
}


class LegacySourceError(KbError):
    """The legacy SQLite file or Qdrant collection cannot be read."""


class LegacySqlite:
    """A read-only connection to the legacy database with tolerant row access."""

    def __init__(self, path: Path) -> None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise LegacySourceError(
                f"Legacy SQLite file {path} does not exist.",
                hint="Pass the path of the old app's database with --sqlite.",
            )
        self.path = path
        self._conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        self._conn.row_factory = sqlite3.Row
        try:
            names = self._conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table'"
            ).fetchall()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise LegacySourceError(
                f"{path} is not a readable SQLite database ({exc}).",
                hint="Check the path; the legacy app's database is a single .db file.",
            ) from None
        self._tables = {str(row[0]) for row in names}
        if not self._tables & set(LEGACY_COLUMNS):
            self._conn.close()
            raise LegacySourceError(
                f"{path} has none of the legacy tables ({', '.join(LEGACY_COLUMNS)}).",
                hint="Check that this is the old app's database.",
            )

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> LegacySqlite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def has_table(self, table: str) -> bool:
        return table in self._tables

    def columns(self, table: str) -> list[str]:
        """The table's actual columns (in file order); empty when the table is absent."""
        if not self.has_table(table):
            return []
        rows = self._conn.execute("SELECT name FROM pragma_table_info(?)", (table,)).fetchall()
        return [str(row[0]) for row in rows]

    def missing_columns(self, table: str) -> list[str]:
        present = set(self.columns(table))
        return [c for c in LEGACY_COLUMNS[table] if c not in present] if present else []

    def count(self, table: str) -> int:
        if not self.has_table(table):
            return 0
        return int(self._conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])

    def rows(self, table: str, *, order_by: tuple[str, ...] = ("id",)) -> Iterator[dict[str, Any]]:
        """Every row as {known column: value or None}, streamed in a stable order.

        Rows are ordered by the present `order_by` columns, then by rowid, so a
        re-run sees them in the same order (needed for resuming and for ids).
        """
        if not self.has_table(table):
            return
        present = self.columns(table)
        wanted = [c for c in LEGACY_COLUMNS[table] if c in present]
        # Names come from our fixed list and the file's own schema, quoted.
        select = ", ".join(f'"{c}"' for c in wanted) or "1"
        order = [f'"{c}"' for c in order_by if c in present] + ["rowid"]
        cursor = self._conn.execute(f'SELECT {select} FROM "{table}" ORDER BY {", ".join(order)}')
        while True:
            chunk = cursor.fetchmany(1000)
            if not chunk:
                return
            for row in chunk:
                values = dict(zip(wanted, tuple(row), strict=True)) if wanted else {}
                yield {c: values.get(c) for c in LEGACY_COLUMNS[table]}
