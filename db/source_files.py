"""Repository for `source_files`: the bytes of indexed files, one per source of a space.

Written in the same user-scoped transaction that indexes the file (so a file and its
chunks appear and disappear together); read by the route that opens a cited file,
for members of the space only (row-level security and the SQL filter).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from db.models import SourceFile

__all__ = ["FileBytes", "delete_source_file", "read_source_file", "save_source_file"]

_table: sa.Table = SourceFile.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class FileBytes:
    """A file as it is kept: its name, type and content."""

    filename: str
    mime: str | None
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def save_source_file(
    connection: Connection,
    *,
    space_id: uuid.UUID,
    source_id: str,
    file: FileBytes,
    added_by: uuid.UUID | None,
) -> uuid.UUID:
    """Keep (or replace) the file of a source; returns its id (stable across versions)."""
    values = {
        "space_id": space_id,
        "source_id": source_id,
        "filename": file.filename,
        "mime": file.mime,
        "size": len(file.data),
        "sha256": file.sha256,
        "data": file.data,
        "added_by": added_by,
    }
    stmt = pg_insert(_table).values(values)
    stmt = stmt.on_conflict_do_update(
        constraint="source_files_space_source_key",
        set_={
            c: stmt.excluded[c] for c in ("filename", "mime", "size", "sha256", "data", "added_by")
        }
        | {"updated_at": sa.func.now()},
        # An unchanged file is not rewritten.
        where=_table.c.sha256 != stmt.excluded.sha256,
    )
    connection.execute(stmt)
    return uuid.UUID(
        str(
            connection.execute(
                sa.select(_table.c.id).where(
                    _table.c.space_id == space_id, _table.c.source_id == source_id
                )
            ).scalar_one()
        )
    )


def delete_source_file(connection: Connection, *, space_id: uuid.UUID, source_id: str) -> None:
    connection.execute(
        sa.delete(_table).where(_table.c.space_id == space_id, _table.c.source_id == source_id)
    )


def read_source_file(
    connection: Connection, *, file_id: uuid.UUID, space_ids: list[uuid.UUID]
) -> FileBytes | None:
    """The file with this id, if it belongs to one of `space_ids`."""
    row = connection.execute(
        sa.select(_table.c.filename, _table.c.mime, _table.c.data).where(
            _table.c.id == file_id, _table.c.space_id.in_(space_ids)
        )
    ).first()
    return None if row is None else FileBytes(row.filename, row.mime, bytes(row.data))
