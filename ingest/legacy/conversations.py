"""Phases 2 and 3: chat sessions -> Chainlit `threads`, messages -> `steps`.

Chainlit lists a user's threads by `"userId"` ordered by their newest step's
`"createdAt"`, and shows a thread's steps ordered by `"createdAt"` (text). So
every timestamp is written in one fixed-width UTC form, and messages of one
session get strictly increasing times (ties and missing times are nudged by a
microsecond after their predecessor) so the text order is the legacy order.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import groupby
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from db.models import Step, Thread
from ingest.legacy import mapping
from ingest.legacy.coerce import (
    chainlit_timestamp,
    parse_int,
    parse_json,
    parse_text,
    parse_timestamp,
)
from ingest.legacy.report import TableReport
from ingest.legacy.sqlite_source import LegacySqlite
from ingest.legacy.state import RunState, SessionRef, batched

__all__ = ["migrate_messages", "migrate_sessions"]

_threads = cast(sa.Table, Thread.__table__)
_steps = cast(sa.Table, Step.__table__)
_TICK = timedelta(microseconds=1)


def _insert(state: RunState, table: Any, rows: list[dict[str, Any]]) -> int:
    stmt = pg_insert(table).values(rows).on_conflict_do_nothing(index_elements=["id"])
    with state.target.unscoped() as conn:
        return len(conn.execute(stmt.returning(table.c.id)).all())


def _thread_rows(
    source: LegacySqlite, state: RunState, table: TableReport
) -> Iterator[dict[str, Any]]:
    now = datetime.now(UTC)
    for row in source.rows("chat_sessions"):
        table.read += 1
        key = parse_text(row["session_id"])
        row_id = key or f"id {row['id']}"
        if key is None:
            table.skip(row_id, "no session_id")
            continue
        if key in state.sessions or key in state.skipped_sessions:
            table.skip(row_id, f"duplicate session_id {key!r}")
            continue
        user = state.user(parse_text(row["user_id"]))
        if user is None:
            reason = f"unknown user {row['user_id']!r}"
            table.skip(row_id, reason)
            state.skipped_sessions[key] = reason
            continue
        created = parse_timestamp(row["created_at"]) or parse_timestamp(row["updated_at"])
        if created is None:
            table.note(
                row_id, "no readable created_at/updated_at: migration time used", action="defaulted"
            )
        state.sessions[key] = SessionRef(mapping.thread_id(key), user, created)
        yield {
            "id": mapping.thread_id(key),
            "createdAt": chainlit_timestamp(created or now),
            "name": parse_text(row["title"]) or "Untitled conversation",
            "userId": user.id,
            "userIdentifier": user.identifier,
            "tags": None,
            "metadata": {"legacy_session_id": key},
        }


def migrate_sessions(source: LegacySqlite, state: RunState) -> None:
    table = state.report.table("chat_sessions", "threads")
    total = source.count("chat_sessions")
    state.announce("threads", total)
    rows = _thread_rows(source, state, table)
    for number, batch in enumerate(batched(rows, state.options.batch_size), start=1):
        written = _insert(state, _threads, batch)
        table.written += written
        table.present += len(batch) - written
        state.batch_done("threads", number, table.read, total)


def _message_order(row: dict[str, Any]) -> tuple[datetime, int, str]:
    moment = parse_timestamp(row["created_at"]) or datetime.max.replace(tzinfo=UTC)
    return moment, parse_int(row["id"]) or 0, str(row["id"])


def _session_steps(
    session_key: str, rows: list[dict[str, Any]], state: RunState, table: TableReport
) -> Iterator[dict[str, Any]]:
    session = state.sessions.get(session_key)
    if session is None:
        why = state.skipped_sessions.get(session_key)
        reason = (
            f"session {session_key!r} was skipped ({why})"
            if why
            else (f"orphan: no session {session_key!r}")
        )
        for row in rows:
            table.skip(row["id"], reason)
        return
    previous = session.created_at - _TICK if session.created_at else None
    for row in sorted(rows, key=_message_order):
        row_id = parse_text(row["id"])
        if row_id is None:
            table.skip(f"session {session_key}", "message without id")
            continue
        role = (parse_text(row["role"]) or "").lower()
        step_type = mapping.ROLE_TO_STEP_TYPE.get(role)
        if step_type is None:
            table.skip(row_id, f"unknown role {row['role']!r}")
            continue
        moment = parse_timestamp(row["created_at"])
        if moment is None:
            table.note(
                row_id,
                "no readable created_at: placed after the previous message",
                action="defaulted",
            )
        if moment is None or (previous is not None and moment <= previous):
            moment = previous + _TICK if previous is not None else datetime.now(UTC)
        previous = moment
        metadata: dict[str, Any] = {"legacy_message_id": row_id}
        sources = parse_json(row["sources"])
        value, invalid = mapping.json_value(sources, raw_key="legacy_sources_raw")
        if invalid:
            table.note(row_id, "sources is not valid JSON: kept as text in metadata", action="kept")
            metadata.update(value)
        elif sources is not None:
            metadata["sources"] = sources
        name = {
            "user_message": session.user.identifier,
            "assistant_message": state.options.assistant_name,
        }.get(step_type, "System")
        stamp = chainlit_timestamp(moment)
        yield {
            "id": mapping.step_id(row_id),
            "name": name,
            "type": step_type,
            "threadId": session.thread_id,
            "parentId": None,
            "streaming": False,
            "waitForAnswer": False,
            "isError": False,
            "metadata": metadata,
            "tags": None,
            "input": "",
            "output": "" if row["content"] is None else str(row["content"]),
            "createdAt": stamp,
            "start": stamp,
            "end": stamp,
        }


def migrate_messages(source: LegacySqlite, state: RunState) -> None:
    table = state.report.table("chat_messages", "steps")
    total = source.count("chat_messages")
    state.announce("messages", total)

    def steps() -> Iterator[dict[str, Any]]:
        # Ordered by session_id, so one session's messages arrive together.
        rows = source.rows("chat_messages", order_by=("session_id", "id"))
        for session_key, group in groupby(rows, key=lambda r: parse_text(r["session_id"])):
            messages = list(group)
            table.read += len(messages)
            if session_key is None:
                for row in messages:
                    table.skip(row["id"], "no session_id")
                continue
            yield from _session_steps(session_key, messages, state, table)

    for number, batch in enumerate(batched(steps(), state.options.batch_size), start=1):
        written = _insert(state, _steps, batch)
        table.written += written
        table.present += len(batch) - written
        state.batch_done("messages", number, table.read, total)
