"""Helpers for tests of the job flow: run queued jobs in the test process, upload and
wait, start a chat job and wait for its final message."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path

import chainlit as cl

from chat_app.handlers.jobs import Started
from chat_app.handlers.upload import Upload, UploadOutcome, ingest_uploads
from chat_app.jobs.runner import work_until_idle
from chat_app.services import Services
from db.models import User
from db.spaces import SpaceAccess
from tests.app_fixtures import REACTOR, chainlit_context, make_upload, personal_access

__all__ = ["finish", "index_uploads", "run_jobs", "upload_as"]


async def run_jobs(services: Services) -> None:
    """Run every queued job in this process (a worker that stops when the queue is empty)."""
    await work_until_idle(services)


async def index_uploads(
    uploads: Sequence[Upload],
    *,
    services: Services,
    user_id: uuid.UUID,
    space: SpaceAccess | None = None,
) -> list[UploadOutcome]:
    """What a person sees end to end: the upload is queued, a worker runs it, the steps
    and the summary follow; returns each file's outcome. By default the files go to the
    person's own space."""
    space = space or personal_access(services, user_id)
    batch = await ingest_uploads(uploads, services=services, user_id=user_id, space=space)
    await run_jobs(services)
    return await batch.finished()


async def finish(started: Started, services: Services) -> cl.Message:
    """Run the queued jobs, then return the message that reports the job's end."""
    await run_jobs(services)
    return await started.final()


async def upload_as(
    user: User,
    services: Services,
    folder: Path,
    name: str = "reactor.md",
    content: str | bytes = REACTOR,
) -> list[UploadOutcome]:
    """`user` uploads one file into their own space in a chat of their own, and a worker
    indexes it (the setup of most answer tests)."""
    async with chainlit_context(user):
        return await index_uploads(
            [make_upload(folder, name, content)], services=services, user_id=user.id
        )
