"""What the CLI and the chat UI call: connect, sync, status, disconnect.

The API version is the one notion-client speaks by default (2025-09-03 for
notion-client 3.x: databases hold data sources, which are queried for rows).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from langchain_core.embeddings import Embeddings
from sqlalchemy.engine import Engine

from ingest.notion.report import SyncProgress, SyncReport

__all__ = [
    "NotionStatus",
    "SyncProgress",
    "SyncReport",
    "connect_notion",
    "disconnect_notion",
    "notion_status",
    "sync_notion",
]


@dataclass(frozen=True)
class LastSync:
    """The latest recorded run."""

    sync_id: int
    status: str
    started_at: datetime
    finished_at: datetime | None
    pages_seen: int
    pages_new: int
    pages_updated: int
    pages_unchanged: int
    pages_removed: int
    pages_failed: int
    error: str | None


@dataclass(frozen=True)
class NotionStatus:
    """A user's Notion connection (the token itself is never exposed)."""

    connected: bool
    workspace_name: str | None
    bot_id: str | None
    connected_at: datetime | None
    pages_indexed: int
    pages_failed: int
    last_sync: LastSync | None


def connect_notion(
    *, engine: Engine, user_id: uuid.UUID, token: str, secret_key: str,
    base_url: str | None = None,
) -> NotionStatus:
    """Check the token with `users.me`, then store it encrypted (replacing any old one)."""
    raise NotImplementedError


def sync_notion(
    *, engine: Engine, embeddings: Embeddings, user_id: uuid.UUID, secret_key: str,
    base_url: str | None = None, chunk_size: int = 1000, chunk_overlap: int = 150,
    requests_per_second: float = 3.0, progress: Callable[[SyncProgress], None] | None = None,
    max_retries: int = 5, backoff_seconds: float = 1.0,
) -> SyncReport:
    """Incrementally sync everything shared with the user's integration."""
    raise NotImplementedError


def notion_status(*, engine: Engine, user_id: uuid.UUID) -> NotionStatus | None:
    """The connection and latest run, or None when the user never connected."""
    raise NotImplementedError


def disconnect_notion(*, engine: Engine, user_id: uuid.UUID, keep_content: bool = False) -> None:
    """Forget the token; unless `keep_content`, also remove Notion chunks and sync state."""
    raise NotImplementedError
