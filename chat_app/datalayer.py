"""Chainlit's own SQLAlchemy data layer on our PostgreSQL (psycopg 3, async).

Threads, steps, elements and feedback go to the tables our migration created;
element bytes go to `stored_files` through `PostgresStorageClient`. The data layer
logs and swallows SQL errors, so tests check rows, not return values.
"""

from __future__ import annotations

from chainlit.data.sql_alchemy import SQLAlchemyDataLayer
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_app.storage import PostgresStorageClient
from db.engine import normalize_url

__all__ = ["build_data_layer"]


def build_data_layer(database_url: str, *, storage_engine: AsyncEngine) -> SQLAlchemyDataLayer:
    """The data layer with attachments stored in PostgreSQL."""
    return SQLAlchemyDataLayer(
        conninfo=normalize_url(database_url),  # postgresql+psycopg:// (async psycopg 3)
        storage_provider=PostgresStorageClient(storage_engine),
    )
