"""`PgRecordManager`: LangChain indexing-API records in `index_records`, per space.

The indexing API (`langchain_core.indexing.index`) asks a record manager which
chunk hashes are already indexed, when, and for which source (group id).

Why not langchain-classic's `SQLRecordManager`: it builds its own engine and opens
and commits its own sessions, so its writes cannot share the per-file transaction
with the chunk writes (a failure mid-file would leave records that point at chunks
that were rolled back, or the reverse), and its table has no `space_id` column, so
row-level security cannot guard it. This one is bound to the caller's connection
from `db.scoped.user_scope`, stores `space_id` on every row and filters by it in SQL.

Timestamps come from PostgreSQL's `clock_timestamp()` (not `now()`, which is frozen
at the start of the transaction): callers that serialise runs on one source (see
`ingest.indexing`) then get a start time later than every record a previous run
committed, which is what the cleanup step relies on.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import cast

import sqlalchemy as sa
from langchain_core.indexing import RecordManager
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from db.models import IndexRecord

__all__ = ["PgRecordManager", "namespace_for"]

_table = cast("sa.Table", IndexRecord.__table__)
_NOW = sa.text("SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8")
# One statement per chunk of keys keeps parameter lists well under PostgreSQL's limit.
_KEYS_PER_STATEMENT = 5000


def namespace_for(space_id: uuid.UUID, collection: str = "documents") -> str:
    return f"{space_id}/{collection}"


class PgRecordManager(RecordManager):
    """Records of one space's namespace, on a user-scoped connection (no own transactions)."""

    def __init__(
        self, *, connection: Connection, space_id: uuid.UUID, collection: str = "documents"
    ) -> None:
        super().__init__(namespace_for(space_id, collection))
        self.connection = connection
        self.space_id = space_id

    def _mine(self) -> list[sa.ColumnElement[bool]]:
        return [_table.c.namespace == self.namespace, _table.c.space_id == self.space_id]

    def create_schema(self) -> None:
        """The table belongs to the Alembic migration; nothing to do here."""

    async def acreate_schema(self) -> None:
        """The table belongs to the Alembic migration; nothing to do here."""

    def get_time(self) -> float:
        value = self.connection.execute(_NOW).scalar_one()
        return float(value)

    def update(
        self,
        keys: Sequence[str],
        *,
        group_ids: Sequence[str | None] | None = None,
        time_at_least: float | None = None,
    ) -> None:
        if group_ids is None:
            group_ids = [None] * len(keys)
        if len(keys) != len(group_ids):
            raise ValueError(f"{len(keys)} keys but {len(group_ids)} group ids")
        if not keys:
            return
        now = self.get_time()
        if time_at_least is not None and now < time_at_least:
            # The cleanup step deletes records older than the run's start: a clock that
            # went backwards would delete live chunks, so refuse instead.
            raise AssertionError(f"server clock went backwards: {now} < {time_at_least}")
        pairs = list(zip(keys, group_ids, strict=True))
        for start in range(0, len(pairs), _KEYS_PER_STATEMENT):
            stmt = pg_insert(_table).values(
                [
                    {
                        "namespace": self.namespace,
                        "key": key,
                        "space_id": self.space_id,
                        "group_id": group_id,
                        "updated_at": now,
                    }
                    for key, group_id in pairs[start : start + _KEYS_PER_STATEMENT]
                ]
            )
            stmt = stmt.on_conflict_do_update(
                index_elements=["namespace", "key"],
                set_={"group_id": stmt.excluded.group_id, "updated_at": stmt.excluded.updated_at},
                where=_table.c.space_id == self.space_id,
            )
            self.connection.execute(stmt)

    def exists(self, keys: Sequence[str]) -> list[bool]:
        found: set[str] = set()
        for start in range(0, len(keys), _KEYS_PER_STATEMENT):
            batch = list(keys[start : start + _KEYS_PER_STATEMENT])
            found.update(
                self.connection.execute(
                    sa.select(_table.c.key).where(*self._mine(), _table.c.key.in_(batch))
                ).scalars()
            )
        return [key in found for key in keys]

    def list_keys(
        self,
        *,
        before: float | None = None,
        after: float | None = None,
        group_ids: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[str]:
        query = sa.select(_table.c.key).where(*self._mine()).order_by(_table.c.key)
        if before is not None:
            query = query.where(_table.c.updated_at < before)
        if after is not None:
            query = query.where(_table.c.updated_at > after)
        if group_ids is not None:
            query = query.where(_table.c.group_id.in_(list(group_ids)))
        if limit is not None:
            query = query.limit(limit)
        return list(self.connection.execute(query).scalars())

    def delete_keys(self, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), _KEYS_PER_STATEMENT):
            batch = list(keys[start : start + _KEYS_PER_STATEMENT])
            self.connection.execute(sa.delete(_table).where(*self._mine(), _table.c.key.in_(batch)))

    def delete_groups(self, group_ids: Sequence[str]) -> int:
        """Delete every record of these groups (sources); returns the count."""
        if not group_ids:
            return 0
        result = self.connection.execute(
            sa.delete(_table).where(*self._mine(), _table.c.group_id.in_(list(group_ids)))
        )
        return int(result.rowcount or 0)

    # The connection is synchronous; `langchain_core.indexing.aindex` is never used
    # with this manager (ingestion runs in a worker thread in the app), so the async
    # variants refuse clearly instead of blocking an event loop.
    async def aget_time(self) -> float:
        raise NotImplementedError("PgRecordManager is synchronous: use index(), not aindex()")

    async def aupdate(
        self,
        keys: Sequence[str],
        *,
        group_ids: Sequence[str | None] | None = None,
        time_at_least: float | None = None,
    ) -> None:
        raise NotImplementedError("PgRecordManager is synchronous: use index(), not aindex()")

    async def aexists(self, keys: Sequence[str]) -> list[bool]:
        raise NotImplementedError("PgRecordManager is synchronous: use index(), not aindex()")

    async def alist_keys(
        self,
        *,
        before: float | None = None,
        after: float | None = None,
        group_ids: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[str]:
        raise NotImplementedError("PgRecordManager is synchronous: use index(), not aindex()")

    async def adelete_keys(self, keys: Sequence[str]) -> None:
        raise NotImplementedError("PgRecordManager is synchronous: use index(), not aindex()")
