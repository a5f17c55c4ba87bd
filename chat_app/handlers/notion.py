"""Notion in the chat: connect (token asked once, stored encrypted), re-sync, status.

A connection belongs to a space (`/notion` for the personal one, `/notion SPACE` for a
shared one): editors and owners connect and re-sync it, every member reads its pages
and sees its status. The sync itself belongs to `ingest.notion.service`; this module
shows it. The token is never echoed or logged: the reply that carried it is removed
from the screen and from the stored chat history as soon as it is read.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import datetime

import chainlit as cl
import sqlalchemy as sa

from chat_app.handlers.progress import run_with_progress
from chat_app.services import Services
from db.errors import KbError
from db.spaces import SpaceAccess, require_role
from ingest.notion.report import SyncProgress, SyncReport
from ingest.notion.service import (
    NotionStatus,
    connect_notion,
    disconnect_notion,
    notion_status,
    sync_notion,
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


def format_status(status: NotionStatus | None, space: SpaceAccess) -> str:
    """A short paragraph about a space's `NotionStatus` (None = never connected)."""
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
    return "\n\n".join(lines)


def format_progress(event: SyncProgress) -> str:
    """One line for a `SyncProgress` event."""
    if event.phase == "enumerating":
        return f"Finding pages shared with the integration… ({event.total} so far)"
    if event.phase == "removing":
        return "Removing pages that were deleted or archived in Notion…"
    if event.phase == "done":
        return f"Done: {event.done} pages."
    title = f": {event.title}" if event.title else ""
    outcome = f" ({event.outcome})" if event.outcome else ""
    return f"Page {event.done}/{event.total}{title}{outcome}"


def _status(services: Services, user_id: uuid.UUID, space: SpaceAccess) -> NotionStatus | None:
    return notion_status(engine=services.engine, user_id=user_id, space_id=space.id)


async def notion_menu(*, services: Services, user_id: uuid.UUID, space: SpaceAccess) -> cl.Message:
    status = await asyncio.to_thread(_status, services, user_id, space)
    msg = cl.Message(
        content=format_status(status, space),
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


def _report_text(report: SyncReport) -> str:
    counts = (
        f"**{report.pages_new}** new, **{report.pages_updated}** updated, "
        f"**{report.pages_removed}** removed, **{report.pages_unchanged}** unchanged, "
        f"**{report.pages_failed}** errors"
    )
    lines = [f"Notion sync {report.status} in {report.seconds:.1f} s: {counts}."]
    for error in list(report.errors)[:10]:
        lines.append(f"- {error}")
    if len(report.errors) > 10:
        lines.append(f"- …and {len(report.errors) - 10} more")
    return "\n".join(lines)


async def resync(*, services: Services, user_id: uuid.UUID, space: SpaceAccess) -> cl.Message:
    """Incremental re-sync with live progress, then the summary."""

    def work(progress: Callable[[SyncProgress], None]) -> SyncReport:
        return sync_notion(
            engine=services.engine,
            embeddings=services.embeddings,
            user_id=user_id,
            space_id=space.id,
            options=services.notion_options(),
            progress=progress,
        )

    async with cl.Step(
        name="Notion sync", type="tool", show_input=False, default_open=True
    ) as step:
        step.output = "Listing pages shared with the integration…"
        await step.update()

        async def show(event: SyncProgress) -> None:
            step.output = format_progress(event)
            await step.update()

        try:
            report = await run_with_progress(work, show)
        except KbError as exc:
            step.is_error = True
            step.output = f"Failed: {exc}"
            msg = cl.Message(
                content=f"**Notion sync failed:** {exc}",
                actions=_actions(space, True),
                metadata={"kind": "notion"},
            )
            await msg.send()
            return msg
        except Exception:
            log.exception("Notion sync failed")
            step.is_error = True
            step.output = "Failed (see the server log)."
            msg = cl.Message(
                content="**Notion sync failed** unexpectedly; see the server log.",
                actions=_actions(space, True),
                metadata={"kind": "notion"},
            )
            await msg.send()
            return msg
        step.output = f"Done: {report.pages_seen} pages checked in {report.seconds:.1f} s."
    msg = cl.Message(
        content=_report_text(report), actions=_actions(space, True), metadata={"kind": "notion"}
    )
    await msg.send()
    return msg


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
