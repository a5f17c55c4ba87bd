"""Jobs in the chat: a step that follows a job live, `/jobs`, and steps re-attached when a
chat is resumed.

A job started from the chat (an upload, a Notion re-sync, a removal) records the chat
step that shows it. While the person keeps chatting, a background task of the web
process follows the job's row (`chat_app/jobs/watch.py`) and rewrites the step; the
step is persisted by Chainlit's data layer at each update, so a reload shows the last
progress at once, and `reattach_jobs` (on resume) follows the unfinished ones again in
the new session. A job that ended while nobody watched gets its final line then.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import chainlit as cl
import sqlalchemy as sa
from chainlit.utils import utc_now

from chat_app.jobs.describe import KIND_LABELS, job_line, when
from chat_app.jobs.watch import JobWatcher
from chat_app.services import Services
from db import jobs as repo
from db.jobs import JobRow
from db.models import Step as StepRow
from db.scoped import user_scope
from db.spaces import SpaceAccess

__all__ = [
    "Started",
    "follow_in_step",
    "in_background",
    "job_step",
    "reattach_jobs",
    "show_jobs",
    "taken_over",
    "watcher",
]

log = logging.getLogger(__name__)

OnEnd = Callable[[JobRow], Awaitable[None]]
T = TypeVar("T")
_watchers: weakref.WeakKeyDictionary[Services, JobWatcher] = weakref.WeakKeyDictionary()
# Job id -> the task following it in this process; a resumed chat takes a job over.
_followers: dict[int, asyncio.Task[Any]] = {}
_taken_over: set[int] = set()
# Background tasks of this process, referenced until they end (asyncio keeps weak ones).
_background: set[asyncio.Task[Any]] = set()


def in_background(work: Awaitable[T]) -> asyncio.Task[T]:
    """Run `work` as a task of the current chat context, kept until it ends."""
    task: asyncio.Task[T] = asyncio.ensure_future(work)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


@dataclass
class Started:
    """A job started from the chat: the message sent now, and the task that follows the
    job and ends with the message reporting its outcome."""

    message: cl.Message
    follower: asyncio.Task[cl.Message] | None = field(default=None, repr=False)

    async def final(self) -> cl.Message:
        return await self.follower if self.follower is not None else self.message


def watcher(services: Services) -> JobWatcher:
    """The process's one watcher over the services' database."""
    found = _watchers.get(services)
    if found is None:

        def read(ids: Sequence[int]) -> dict[int, JobRow]:
            with services.engine.begin() as conn:
                return repo.jobs_by_ids(conn, job_ids=ids)

        found = _watchers[services] = JobWatcher(read)
    return found


def taken_over(job_id: int) -> bool:
    """Whether a resumed chat follows this job now (its first follower stays quiet)."""
    return job_id in _taken_over


def job_step(name: str) -> cl.Step:
    """An open tool step for a job, named after what it works on."""
    step = cl.Step(name=name, type="tool", show_input=False, default_open=True)
    step.start = utc_now()
    return step


async def follow_in_step(
    services: Services, job_id: int, step: cl.Step, *, on_end: OnEnd | None = None
) -> JobRow | None:
    """Show each state of the job in `step` until it ends; then `on_end(row)`."""
    _followers[job_id] = asyncio.current_task()  # type: ignore[assignment]
    last: JobRow | None = None
    try:
        async for row in watcher(services).follow(job_id):
            last = row
            step.output = job_line(row)
            step.is_error = row.status == "failed"
            if row.finished:
                step.end = utc_now()
            await step.update()
        if last is not None and last.finished:
            await asyncio.to_thread(_mark_final, services, job_id)
            if on_end is not None:
                await on_end(last)
        return last
    finally:
        if _followers.get(job_id) is asyncio.current_task():
            _followers.pop(job_id, None)


def _mark_final(services: Services, job_id: int) -> None:
    with services.engine.begin() as conn:
        repo.set_step_final(conn, job_id=job_id)


async def reattach_jobs(
    services: Services, thread_id: str, *, on_end: OnEnd | None
) -> list[asyncio.Task[JobRow | None]]:
    """On resume: follow this thread's jobs whose step is not final yet, in this session.

    Returns the tasks following them. A job followed by this process's earlier session
    is taken over (that follower stops, so nothing is posted twice)."""
    rows = await asyncio.to_thread(_unfinished, services, thread_id)
    tasks = []
    for row in rows:
        stored = await asyncio.to_thread(_stored_step, services, row)
        previous = _followers.get(row.id)
        if previous is not None and not previous.done():
            _taken_over.add(row.id)
            previous.cancel()
        tasks.append(asyncio.create_task(_take_over(services, row.id, stored, on_end=on_end)))
    return tasks


async def _take_over(
    services: Services, job_id: int, step: cl.Step, *, on_end: OnEnd | None
) -> JobRow | None:
    try:
        return await follow_in_step(services, job_id, step, on_end=on_end)
    finally:
        # The earlier follower has long stopped; a record kept beyond this job would
        # silence another job given the same id (a fresh database starts ids again).
        _taken_over.discard(job_id)


def _unfinished(services: Services, thread_id: str) -> list[JobRow]:
    with services.engine.begin() as conn:
        return repo.unfinished_steps_of_thread(conn, thread_id=thread_id)


def _stored_step(services: Services, row: JobRow) -> cl.Step:
    """The job's step as Chainlit stored it (same id, name, parent and times)."""
    steps = StepRow.__table__
    with services.engine.begin() as conn:
        stored = conn.execute(
            sa.select(steps).where(steps.c.id == uuid.UUID(str(row.step_id)))
        ).first()
    parent = stored.parentId if stored is not None else None
    step = cl.Step(
        name=stored.name if stored is not None else row.title,
        type="tool",
        id=row.step_id,
        parent_id=str(parent) if parent else None,
        show_input=False,
        default_open=True,
        thread_id=row.thread_id,
    )
    if stored is not None:
        step.created_at = stored.createdAt or step.created_at
        step.start = stored.start or step.created_at
    return step


# -- /jobs --------------------------------------------------------------------------------


def _recent(
    services: Services, user_id: uuid.UUID, spaces: Sequence[SpaceAccess], limit: int
) -> list[JobRow]:
    with user_scope(services.engine, user_id) as conn:
        return repo.list_jobs(conn, space_ids=[s.id for s in spaces], limit=limit)


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


async def show_jobs(
    *, services: Services, user_id: uuid.UUID, spaces: Sequence[SpaceAccess], limit: int = 20
) -> cl.Message:
    """The newest jobs of the spaces the user can read: theirs, their colleagues' in
    shared spaces, and the scheduled Notion syncs."""
    rows = await asyncio.to_thread(_recent, services, user_id, spaces, limit)
    if not rows:
        text = "No jobs yet. Uploads, Notion syncs and `/forget` run as background jobs."
    else:
        names = {s.id: ("Personal" if s.kind == "personal" else s.name) for s in spaces}
        lines = [
            f"**Recent jobs** ({len(rows)})",
            "",
            "| job | what | space | status | by | queued |",
            "|---|---|---|---|---|---|",
        ]
        for row in rows:
            who = row.requested_by_login or ("schedule" if row.origin == "schedule" else "")
            what = f"{KIND_LABELS.get(row.kind, row.kind)}: {row.title}"
            line = job_line(row)
            # "failed: Failed: x is not a PDF" says the status twice.
            status = line if line.lower().startswith(row.status) else f"{row.status}: {line}"
            lines.append(
                f"| {row.id} | {_escape(what)} | {_escape(names.get(row.space_id, ''))} | "
                f"{_escape(status)} | {_escape(who)} | "
                f"{when(row.created_at)} |"
            )
        text = "\n".join(lines)
    msg = cl.Message(content=text, metadata={"kind": "jobs"})
    await msg.send()
    return msg
