"""Chainlit's own SQLAlchemy data layer on our PostgreSQL (psycopg 3, async).

Threads, steps, elements and feedback go to the tables our migration created;
element bytes go to `stored_files` through `PostgresStorageClient`. The data layer
logs and swallows SQL errors, so tests check rows, not return values.
"""

from __future__ import annotations

import sqlalchemy as sa
from chainlit.data.sql_alchemy import SQLAlchemyDataLayer
from chainlit.types import ThreadDict
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_app.storage import PostgresStorageClient
from db.engine import normalize_url

__all__ = ["KbDataLayer", "build_data_layer"]

_OPEN_STEPS = sa.text(
    'SELECT id::text AS id FROM steps WHERE "threadId" = CAST(:thread_id AS uuid) AND "defaultOpen"'
)


class KbDataLayer(SQLAlchemyDataLayer):
    """Chainlit's data layer, plus what its reads drop."""

    async def get_thread(self, thread_id: str) -> ThreadDict | None:
        """The thread with each step's stored `defaultOpen` (Chainlit stores it but does
        not read it back): a job's step stays open after a reload, so its progress is
        visible without a click."""
        thread = await super().get_thread(thread_id)
        if thread is None or not thread.get("steps"):
            return thread
        async with self.engine.connect() as conn:
            rows = await conn.execute(_OPEN_STEPS, {"thread_id": thread["id"]})
            open_ids = {str(row.id) for row in rows}
        for step in thread["steps"]:
            if str(step.get("id")) in open_ids:
                step["defaultOpen"] = True
        return thread


def build_data_layer(database_url: str, *, storage_engine: AsyncEngine) -> SQLAlchemyDataLayer:
    """The data layer with attachments stored in PostgreSQL."""
    return KbDataLayer(
        conninfo=normalize_url(database_url),  # postgresql+psycopg:// (async psycopg 3)
        storage_provider=PostgresStorageClient(storage_engine),
    )
