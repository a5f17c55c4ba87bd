"""Phases 4 and 5: usage logs; Notion sync history -> `notion_syncs` + `notion_pages`.

These tables have no natural key of their own, so each row carries its legacy id
in `details.legacy_id`; a batch first asks which of its ids the user already
has and inserts only the others (re-runs write nothing). Writes go through
`user_scope`, one transaction per user per batch.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from db.models import NotionPage, NotionSync, UsageLog
from ingest.legacy import mapping
from ingest.legacy.coerce import parse_int, parse_json, parse_text, parse_timestamp
from ingest.legacy.report import TableReport
from ingest.legacy.sqlite_source import LegacySqlite
from ingest.legacy.state import RunState, batched

__all__ = ["migrate_notion", "migrate_usage"]

_usage = cast(sa.Table, UsageLog.__table__)
_syncs = cast(sa.Table, NotionSync.__table__)
_pages = cast(sa.Table, NotionPage.__table__)
_FAILED_STATUSES = {"failed", "error", "failure"}


@dataclass(frozen=True)
class _Pending:
    user_id: uuid.UUID  # whose scope writes it
    legacy_id: str
    row: dict[str, Any]


def _legacy_id(row: dict[str, Any]) -> str:
    """The row's id; without one, a hash of its content (stable across runs)."""
    text = parse_text(row.get("id"))
    if text is not None:
        return text
    digest = hashlib.sha256(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()
    return f"sha256:{digest[:32]}"


def _write(state: RunState, table: Any, pending: list[_Pending], report: TableReport) -> None:
    """Insert the rows whose legacy id the user (usage logs) or their personal space
    (Notion runs) does not have yet, per user."""
    by_user: dict[uuid.UUID, list[_Pending]] = {}
    for item in pending:
        by_user.setdefault(item.user_id, []).append(item)
    for user_id, items in by_user.items():
        ids = [i.legacy_id for i in items]
        legacy_id = table.c.details["legacy_id"].astext
        owner = (
            table.c.space_id == state.space_of(user_id)
            if "space_id" in table.c
            else table.c.user_id == user_id
        )
        with state.target.scoped(user_id) as conn:
            have = set(
                conn.execute(sa.select(legacy_id).where(owner, legacy_id.in_(ids))).scalars()
            )
            new = [i.row for i in items if i.legacy_id not in have]
            if new:
                conn.execute(pg_insert(table).values(new))
        report.written += len(new)
        report.present += len(items) - len(new)


def _usage_rows(source: LegacySqlite, state: RunState, report: TableReport) -> Iterator[_Pending]:
    for row in source.rows("usage_logs", order_by=("user_id", "id")):
        report.read += 1
        legacy_id = _legacy_id(row)
        user = state.user(parse_text(row["user_id"]))
        if user is None:
            report.skip(legacy_id, f"unknown user {row['user_id']!r}")
            continue
        details, invalid = mapping.json_value(parse_json(row["details"]), raw_key="legacy_raw")
        if invalid:
            report.note(legacy_id, "details is not valid JSON: kept as text", action="kept")
        details["legacy_id"] = legacy_id
        created = parse_timestamp(row["created_at"])
        if created is None:
            report.note(
                legacy_id, "no readable created_at: migration time used", action="defaulted"
            )
        values: dict[str, Any] = {
            "user_id": user.id,
            "action": parse_text(row["action"]) or "unknown",
            "tokens_used": parse_int(row["tokens_used"]),
            "details": details,
            "created_at": created or datetime.now(UTC),
        }
        yield _Pending(user.id, legacy_id, values)


def migrate_usage(source: LegacySqlite, state: RunState) -> None:
    report = state.report.table("usage_logs", "usage_logs")
    total = source.count("usage_logs")
    state.announce("usage logs", total)
    rows = _usage_rows(source, state, report)
    for number, batch in enumerate(batched(rows, state.options.batch_size), start=1):
        _write(state, _usage, batch, report)
        state.batch_done("usage logs", number, report.read, total)


@dataclass
class _PageState:
    user_id: uuid.UUID
    page_id: str
    title: str | None
    chunks: int
    synced_at: datetime | None


def _sync_rows(
    source: LegacySqlite,
    state: RunState,
    report: TableReport,
    pages: dict[tuple[uuid.UUID, str], _PageState],
) -> Iterator[_Pending]:
    for row in source.rows("notion_syncs", order_by=("user_id", "id")):
        report.read += 1
        legacy_id = _legacy_id(row)
        user = state.user(parse_text(row["user_id"]))
        if user is None:
            report.skip(legacy_id, f"unknown user {row['user_id']!r}")
            continue
        page_id = parse_text(row["page_id"])
        title = parse_text(row["page_title"])
        chunks = parse_int(row["chunks_count"]) or 0
        status = parse_text(row["status"])
        synced = parse_timestamp(row["last_synced_at"])
        if synced is None:
            report.note(
                legacy_id, "no readable last_synced_at: migration time used", action="defaulted"
            )
        if page_id is None:
            report.note(legacy_id, "no page_id: sync kept, no page state", action="kept")
        else:
            key = (user.id, page_id)
            known = pages.get(key)
            # The newest sync of a page (by time, then by legacy order) gives its state.
            if known is None or (synced or datetime.min.replace(tzinfo=UTC)) >= (
                known.synced_at or datetime.min.replace(tzinfo=UTC)
            ):
                pages[key] = _PageState(user.id, page_id, title, chunks, synced)
        values: dict[str, Any] = {
            "space_id": state.space_of(user.id),
            "started_by": user.id,
            "status": "legacy",
            "started_at": synced or datetime.now(UTC),
            "finished_at": synced,
            "pages_seen": 1,
            "chunks_written": chunks,
            "error": f"legacy status: {status}"
            if (status or "").lower() in _FAILED_STATUSES
            else None,
            "details": {
                "legacy_id": legacy_id,
                "page_id": page_id,
                "page_title": title,
                "legacy_status": status,
                "chunks_count": chunks,
            },
        }
        yield _Pending(user.id, legacy_id, values)


def migrate_notion(source: LegacySqlite, state: RunState) -> None:
    report = state.report.table("notion_syncs", "notion_syncs")
    total = source.count("notion_syncs")
    state.announce("notion syncs", total)
    pages: dict[tuple[uuid.UUID, str], _PageState] = {}
    rows = _sync_rows(source, state, report, pages)
    for number, batch in enumerate(batched(rows, state.options.batch_size), start=1):
        _write(state, _syncs, batch, report)
        state.batch_done("notion syncs", number, report.read, total)

    page_report = state.report.table("notion_syncs (latest per page)", "notion_pages")
    page_report.read = len(pages)
    now = datetime.now(UTC)
    by_user: dict[uuid.UUID, list[_PageState]] = {}
    for page in pages.values():
        by_user.setdefault(page.user_id, []).append(page)
    for user_id, user_pages in by_user.items():
        for batch_pages in batched(user_pages, state.options.batch_size):
            page_rows = [
                {
                    "space_id": state.space_of(p.user_id),
                    "page_id": p.page_id,
                    "title": p.title,
                    # Unknown edit time: the next Notion sync fetches and re-indexes the page.
                    "last_edited_time": None,
                    "chunk_count": p.chunks,
                    "status": "legacy",
                    "synced_at": p.synced_at or now,
                }
                for p in batch_pages
            ]
            # A page the new app already synced keeps its newer state.
            stmt = pg_insert(_pages).values(page_rows).on_conflict_do_nothing()
            with state.target.scoped(user_id) as conn:
                written = len(conn.execute(stmt.returning(_pages.c.page_id)).all())
            page_report.written += written
            page_report.present += len(page_rows) - written
