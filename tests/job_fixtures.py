"""Helpers for tests of the job flow: run queued jobs in the test process, upload and
wait, start a chat job and wait for its final message."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import chainlit as cl

from chat_app.handlers.jobs import Started
from chat_app.handlers.upload import Upload, UploadOutcome, ingest_uploads
from chat_app.jobs.runner import work_until_idle
from chat_app.services import Services
from db.spaces import SpaceAccess

__all__ = ["finish", "index_uploads", "run_jobs"]


async def run_jobs(services: Services) -> None:
    """Run every queued job in this process (a worker that stops when the queue is empty)."""
    await work_until_idle(services)


async def index_uploads(
    uploads: Sequence[Upload], *, services: Services, user_id: uuid.UUID, space: SpaceAccess
) -> list[UploadOutcome]:
    """What a person sees end to end: the upload is queued, a worker runs it, the steps
    and the summary follow; returns each file's outcome."""
    batch = await ingest_uploads(uploads, services=services, user_id=user_id, space=space)
    await run_jobs(services)
    return await batch.finished()


async def finish(started: Started, services: Services) -> cl.Message:
    """Run the queued jobs, then return the message that reports the job's end."""
    await run_jobs(services)
    return await started.final()
