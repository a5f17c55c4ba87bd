"""The message that reports a job's end in a resumed chat (the step was re-attached)."""

from __future__ import annotations

import asyncio
import uuid

import chainlit as cl

from chat_app.handlers.notion import sync_outcome_message
from chat_app.handlers.sources import removal_message
from chat_app.handlers.spaces import user_spaces
from chat_app.handlers.upload import outcome_of, upload_summary
from chat_app.services import Services
from db.jobs import JobRow
from db.spaces import SpaceAccess

__all__ = ["announce_end"]


async def announce_end(services: Services, user_id: uuid.UUID, row: JobRow) -> None:
    if row.kind == "delete_source":
        await removal_message(row).send()
        return
    spaces = await asyncio.to_thread(user_spaces, services, user_id)
    space = next(
        (s for s in spaces if s.id == row.space_id),
        SpaceAccess(row.space_id, row.space_name or "", row.space_kind or "shared", "reader"),
    )
    if row.kind == "notion_sync":
        await sync_outcome_message(row, space).send()
    else:
        text = upload_summary([outcome_of(row)], space)
        await cl.Message(content=text, metadata={"kind": "upload"}).send()
