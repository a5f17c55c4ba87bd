"""Notion in the chat: connect (token asked once, stored encrypted), re-sync, status.

A connection belongs to a space (`/notion` for the personal one, `/notion SPACE` for a
shared one): editors and owners connect and re-sync it, every member reads its pages
and sees its status (with the last and next scheduled run). A re-sync is a job run by
a worker (the same job the schedule queues); this module queues it and shows its
progress in a step while the person keeps chatting. The token is never echoed or
logged: the reply that carried it is removed from the screen and from the stored chat
history as soon as it is read.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime
from typing import Any

import chainlit as cl
import sqlalchemy as sa

from chat_app.handlers.jobs import Started, follow_in_step, in_background, job_step
from chat_app.jobs.describe import notion_progress_line
from chat_app.jobs.schedule import NotionSchedule, notion_schedule
from chat_app.services import Services
from db.errors import KbError
from db.jobs import JobRow
from db.spaces import SpaceAccess, require_role
from ingest.notion.report import SyncProgress
from ingest.notion.service import (
    NotionStatus,
    connect_notion,
    disconnect_notion,
    notion_status,
)

__all__ = [
    "ACTION_CONNECT",
    "ACTION_DISCONNECT",
    "ACTION_STATUS",
    "ACTION_SYNC",
    "connect",
    "disconnect",
    "format_progress",
    "format_status",
    "notion_menu",
    "resync",
    "show_status",
    "sync_outcome_message",
]

log = logging.getLogger(__name__)

ACTION_CONNECT = "notion_connect"
ACTION_SYNC = "notion_sync"
ACTION_STATUS = "notion_status"
ACTION_DISCONNECT = "notion_disconnect"
TOKEN_TIMEOUT_S = 300


def _actions(space: SpaceAccess, connected: bool) -> list[cl.Action]:
    """The buttons under a Notion message; each names its space. Readers get status only."""
    payload = {"space_id": str(space.id)}
    if not space.can_write:
        return [cl.Action(name=ACTION_STATUS, payload=payload, label="Status", icon="info")]
    if not connected:
        return [
            cl.Action(name=ACTION_CONNECT, payload=payload, label="Connect Notion", icon="plug")
        ]
    return [
        cl.Action(name=ACTION_SYNC, payload=payload, label="Re-sync now", icon="refresh-cw"),
        cl.Action(name=ACTION_STATUS, payload=payload, label="Status", icon="info"),
        cl.Action(name=ACTION_CONNECT, payload=payload, label="Change token", icon="key"),
        cl.Action(name=ACTION_DISCONNECT, payload=payload, label="Disconnect", icon="unplug"),
    ]


def _where(space: SpaceAccess) -> str:
    return "" if space.kind == "personal" else f" for **{space.name}**"


def _when(value: datetime | None) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC") if value.tzinfo else f"{value:%Y-%m-%d %H:%M}"
    return str(value) if value else "never"


def format_status(
    status: NotionStatus | None, space: SpaceAccess, schedule: NotionSchedule | None = None
) -> str:
    """A short paragraph about a space's `NotionStatus` (None = never connected) and,
    when connected, its last and next run."""
    if status is None or not status.connected:
        if not space.can_write:
            text = f"Notion is **not connected**{_where(space)}; its editors can connect it."
        else:
            text = (
                f"Notion is **not connected**{_where(space)}. Create an internal integration "
                "at notion.so/my-integrations, share your pages with it, then press "
                "**Connect Notion** and paste its token."
            )
        if status is not None and status.pages_indexed:
            text += f" ({status.pages_indexed} pages from an earlier connection are indexed.)"
        return text
    workspace = f" to *{status.workspace_name}*" if status.workspace_name else ""
    lines = [
        f"Notion is **connected**{_where(space)}{workspace}. "
        f"Pages indexed: **{status.pages_indexed}**."
    ]
    last = status.last_sync
    if last is None:
        lines.append("Not synced yet.")
    else:
        lines.append(
            f"Last sync: {_when(last.finished_at or last.started_at)} — {last.status}: "
            f"{last.pages_new} new, {last.pages_updated} updated, {last.pages_removed} removed, "
            f"{last.pages_unchanged} unchanged, {last.pages_failed} errors."
            + (f" {last.error}" if last.error else "")
        )
    if schedule is not None:
        lines.append(" · ".join(schedule.lines()) + ".")
    return "\n\n".join(lines)


def format_progress(event: SyncProgress) -> str:
    """One line for a `SyncProgress` event."""
    return notion_progress_line(event)


def _status(services: Services, user_id: uuid.UUID, space: SpaceAccess) -> NotionStatus | None:
    return notion_status(engine=services.engine, user_id=user_id, space_id=space.id)


def _status_and_schedule(
    services: Services, user_id: uuid.UUID, space: SpaceAccess
) -> tuple[NotionStatus | None, NotionSchedule | None]:
    status = _status(services, user_id, space)
    if status is None or not status.connected:
        return status, None
    return status, notion_schedule(services, user_id=user_id, space_id=space.id)


async def notion_menu(*, services: Services, user_id: uuid.UUID, space: SpaceAccess) -> cl.Message:
    status, schedule = await asyncio.to_thread(_status_and_schedule, services, user_id, space)
    msg = cl.Message(
        content=format_status(status, space, schedule),
        actions=_actions(space, status is not None and status.connected),
        metadata={"kind": "notion"},
    )
    await msg.send()
    return msg


async def show_status(*, services: Services, user_id: uuid.UUID, space: SpaceAccess) -> cl.Message:
    return await notion_menu(services=services, user_id=user_id, space=space)


async def _scrub_reply(reply_id: str, services: Services) -> None:
    """Remove the message that carried the token: from the screen now, from the database
    once Chainlit's background task has written it (it is created concurrently)."""
    await cl.Message(content="", id=reply_id).remove()

    def delete_row() -> bool:
        with services.engine.begin() as conn:
            gone = conn.execute(sa.text("DELETE FROM steps WHERE id = :id"), {"id": reply_id})
            return bool(gone.rowcount)

    for _ in range(50):
        if await asyncio.to_thread(delete_row):
            return
        await asyncio.sleep(0.1)


async def connect(*, services: Services, user_id: uuid.UUID, space: SpaceAccess) -> cl.Message:
    """Ask for the integration token, validate it with Notion and store it encrypted."""
    require_role(space, "editor", action="connect Notion")
    reply = await cl.AskUserMessage(
        content=(
            f"Paste the Notion **internal integration token**{_where(space)} (it starts with "
            "`ntn_` or `secret_`). It is checked with Notion, stored encrypted, never shown to "
            "anyone, and removed from this chat."
        ),
        timeout=TOKEN_TIMEOUT_S,
    ).send()
    if not reply:
        msg = cl.Message(content="No token received; Notion is unchanged.")
        await msg.send()
        return msg
    token = str(reply.get("output") or "").strip()
    await _scrub_reply(str(reply["id"]), services)
    try:
        status = await asyncio.to_thread(
            lambda: connect_notion(
                engine=services.engine,
                user_id=user_id,
                space_id=space.id,
                token=token,
                options=services.notion_options(),
            )
        )
    except KbError as exc:
        msg = cl.Message(
            content=f"**Notion refused the connection:** {exc}",
            actions=_actions(space, False),
            metadata={"kind": "notion"},
        )
        await msg.send()
        return msg
    msg = cl.Message(
        content=format_status(status, space) + "\n\nPress **Re-sync now** to index the pages.",
        actions=_actions(space, True),
        metadata={"kind": "notion"},
    )
    await msg.send()
    return msg


def _report_text(result: dict[str, Any]) -> str:
    counts = (
        f"**{result.get('pages_new', 0)}** new, **{result.get('pages_updated', 0)}** updated, "
        f"**{result.get('pages_removed', 0)}** removed, "
        f"**{result.get('pages_unchanged', 0)}** unchanged, "
        f"**{result.get('pages_failed', 0)}** errors"
    )
    status, seconds = result.get("status", "done"), float(result.get("seconds", 0.0))
    lines = [f"Notion sync {status} in {seconds:.1f} s: {counts}."]
    errors = list(result.get("errors") or [])
    for error in errors[:10]:
        lines.append(f"- {error}")
    if len(errors) > 10:
        lines.append(f"- …and {len(errors) - 10} more")
    return "\n".join(lines)


def sync_outcome_message(row: JobRow, space: SpaceAccess) -> cl.Message:
    """The message that reports how a Notion sync job ended (with the menu's buttons)."""
    if row.status == "done":
        content = _report_text(row.result)
    elif row.status == "cancelled":
        content = "Notion sync was cancelled; pages synced before that are kept."
    else:
        content = f"**Notion sync failed:** {row.error or 'see the worker log.'}"
    return cl.Message(content=content, actions=_actions(space, True), metadata={"kind": "notion"})


async def resync(*, services: Services, user_id: uuid.UUID, space: SpaceAccess) -> Started:
    """Queue an incremental re-sync (or join the one waiting); a step shows its progress
    while the person keeps chatting, then a message reports the outcome."""
    require_role(space, "editor", action="re-sync Notion")
    status = await asyncio.to_thread(_status, services, user_id, space)
    if status is None or not status.connected:
        msg = cl.Message(
            content="**Notion sync failed:** This space has not connected Notion. Press "
            "**Connect Notion** first.",
            actions=_actions(space, False),
            metadata={"kind": "notion"},
        )
        await msg.send()
        return Started(msg)
    step = job_step("Notion sync")
    step.output = "Queued…"
    await step.send()
    queued = await asyncio.to_thread(
        services.job_queue().enqueue_notion_sync,
        space_id=space.id,
        requested_by=user_id,
        origin="chat",
        thread_id=step.thread_id,
        step_id=step.id,
    )
    joined = " (one was already waiting: this follows it)" if queued.already_queued else ""
    msg = cl.Message(
        content=f"Notion re-sync queued{joined}. Keep chatting: the step shows its progress, "
        "and a summary follows.",
        metadata={"kind": "notion"},
    )
    await msg.send()

    async def follow() -> cl.Message:
        row = await follow_in_step(services, queued.job_id, step)
        if row is None:
            return msg
        final = sync_outcome_message(row, space)
        await final.send()
        return final

    return Started(msg, in_background(follow()))


async def disconnect(*, services: Services, user_id: uuid.UUID, space: SpaceAccess) -> cl.Message:
    await asyncio.to_thread(
        lambda: disconnect_notion(engine=services.engine, user_id=user_id, space_id=space.id)
    )
    msg = cl.Message(
        content=f"Notion is disconnected{_where(space)}: its token and its pages are removed "
        "from the knowledge base.",
        actions=_actions(space, False),
        metadata={"kind": "notion"},
    )
    await msg.send()
    return msg
