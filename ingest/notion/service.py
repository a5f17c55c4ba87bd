"""What the CLI and the chat UI call: connect, sync, status, disconnect.

A connection belongs to a space: its editors and owners connect, re-sync and
disconnect it; every member reads the pages. The token is never shown to anyone.

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

from db import notion as repo
from db.errors import InvalidInput
from db.scoped import user_scope
from db.spaces import require_role, space_access
from ingest.indexing import delete_source
from ingest.notion.client import NotionClient
from ingest.notion.crypto import decrypt_token, encrypt_token
from ingest.notion.errors import NotionNotConnected
from ingest.notion.report import SyncProgress, SyncReport
from ingest.notion.sync import SOURCE_TYPE, SyncOptions, run_sync

__all__ = [
    "NotionOptions",
    "NotionStatus",
    "SyncProgress",
    "SyncReport",
    "connect_notion",
    "disconnect_notion",
    "notion_status",
    "sync_notion",
]


#: The latest recorded run, as the repository reads it.
LastSync = repo.SyncRow


@dataclass(frozen=True)
class NotionOptions:
    """How to reach Notion and index its pages; the app builds one from its settings."""

    secret_key: str  # encrypts tokens at rest
    base_url: str | None = None  # None: api.notion.com (tests point at a fake)
    requests_per_second: float = 3.0
    max_retries: int = 5
    backoff_seconds: float = 1.0
    chunk_size: int = 1000
    chunk_overlap: int = 150


@dataclass(frozen=True)
class NotionStatus:
    """A space's Notion connection (the token itself is never exposed)."""

    connected: bool
    workspace_name: str | None
    bot_id: str | None
    connected_at: datetime | None
    pages_indexed: int
    pages_failed: int
    last_sync: LastSync | None


def _require_editor(engine: Engine, user_id: uuid.UUID, space_id: uuid.UUID, action: str) -> None:
    with user_scope(engine, user_id) as conn:
        require_role(
            space_access(conn, user_id=user_id, space_id=space_id), "editor", action=action
        )


def connect_notion(
    *,
    engine: Engine,
    user_id: uuid.UUID,
    space_id: uuid.UUID,
    token: str,
    options: NotionOptions,
) -> NotionStatus:
    """Check the token with `users.me`, then store it encrypted for the space (replacing
    any old one). `user_id` must be an editor of the space.

    A refused token raises `NotionAuthError` and stores nothing.
    """
    _require_editor(engine, user_id, space_id, "connect Notion")
    token = token.strip()
    if not token:
        raise InvalidInput(
            "The Notion token is empty.",
            hint="Paste the Internal Integration Secret from https://www.notion.so/my-integrations.",
        )
    with NotionClient(
        token, base_url=options.base_url, requests_per_second=0, max_retries=2
    ) as client:
        me = client.me()
    bot = me.get("bot") or {}
    with user_scope(engine, user_id) as conn:
        repo.save_connection(
            conn,
            space_id=space_id,
            connected_by=user_id,
            token_encrypted=encrypt_token(token, secret_key=options.secret_key),
            workspace_name=bot.get("workspace_name"),
            bot_id=me.get("id"),
        )
    status = notion_status(engine=engine, user_id=user_id, space_id=space_id)
    assert status is not None
    return status


def sync_notion(
    *,
    engine: Engine,
    embeddings: Embeddings,
    user_id: uuid.UUID,
    space_id: uuid.UUID,
    options: NotionOptions,
    progress: Callable[[SyncProgress], None] | None = None,
) -> SyncReport:
    """Incrementally sync everything shared with the space's integration, as `user_id`
    (an editor of the space).

    Raises `NotionNotConnected` without a stored token, `NotionAuthError` when Notion
    refuses it (the run is recorded as failed, nothing indexed changes); per-page
    problems make the run `partial` instead (see `SyncReport.errors`).
    """
    _require_editor(engine, user_id, space_id, "re-sync Notion")
    with user_scope(engine, user_id) as conn:
        stored = repo.get_connection(conn, space_id=space_id)
    if stored is None:
        raise NotionNotConnected(
            "This space has not connected Notion.",
            hint="Run `kb notion connect --user LOGIN` (or use Connect Notion in the app).",
        )
    token = decrypt_token(stored.token_encrypted, secret_key=options.secret_key)
    with NotionClient(
        token,
        base_url=options.base_url,
        requests_per_second=options.requests_per_second,
        max_retries=options.max_retries,
        backoff_seconds=options.backoff_seconds,
    ) as client:
        return run_sync(
            engine=engine,
            embeddings=embeddings,
            user_id=user_id,
            space_id=space_id,
            client=client,
            options=SyncOptions(chunk_size=options.chunk_size, chunk_overlap=options.chunk_overlap),
            progress=progress,
        )


def notion_status(
    *, engine: Engine, user_id: uuid.UUID, space_id: uuid.UUID
) -> NotionStatus | None:
    """The space's connection and latest run as `user_id` (a member) sees them, or None
    when the space never connected nor synced."""
    with user_scope(engine, user_id) as conn:
        stored = repo.get_connection(conn, space_id=space_id)
        last = repo.last_sync(conn, space_id=space_id)
        counts = repo.count_pages(conn, space_id=space_id)
    if stored is None and last is None:
        return None
    return NotionStatus(
        connected=stored is not None,
        workspace_name=stored.workspace_name if stored else None,
        bot_id=stored.bot_id if stored else None,
        connected_at=stored.updated_at if stored else None,
        pages_indexed=counts.get("indexed", 0),
        pages_failed=counts.get("failed", 0),
        last_sync=last,
    )


def disconnect_notion(
    *, engine: Engine, user_id: uuid.UUID, space_id: uuid.UUID, keep_content: bool = False
) -> None:
    """Forget the space's token; unless `keep_content`, also remove its Notion chunks and
    page state. `user_id` must be an editor. Sync history (`notion_syncs`) is kept.
    """
    _require_editor(engine, user_id, space_id, "disconnect Notion")
    with user_scope(engine, user_id) as conn:
        repo.delete_connection(conn, space_id=space_id)
        pages = repo.load_pages(conn, space_id=space_id)
    if keep_content:
        return
    for page_id, state in pages.items():
        if state.kind == "page":
            delete_source(
                engine=engine,
                user_id=user_id,
                space_id=space_id,
                source_id=page_id,
                source_type=SOURCE_TYPE,
            )
    with user_scope(engine, user_id) as conn:
        repo.delete_pages(conn, space_id=space_id, page_ids=pages)
