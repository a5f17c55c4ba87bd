"""Following jobs from the web process: one polling loop for every job a chat shows.

Workers write progress into `jobs`; a chat step that shows a job follows it with
`JobWatcher.follow(job_id)`, which yields the job's row each time it changed and ends
when the job has. However many chats follow however many jobs, the process reads
them with one query per `interval` (polling rather than LISTEN: a notification per
progress write would cost the workers more than this costs us, and a missed
notification would freeze a step; progress lands within `interval` either way).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from db.jobs import JobRow

__all__ = ["JobWatcher"]

log = logging.getLogger(__name__)

Read = Callable[[Sequence[int]], dict[int, JobRow]]


@dataclass(eq=False)
class _Subscriber:
    job_id: int
    queue: asyncio.Queue[JobRow | None] = field(default_factory=asyncio.Queue)
    seen: datetime | None = None


class JobWatcher:
    """`read(ids)` is a blocking function returning the rows of those jobs (run in a thread)."""

    def __init__(self, read: Read, *, interval: float = 0.5) -> None:
        self._read = read
        self.interval = interval
        self._subscribers: list[_Subscriber] = []
        self._loop_task: asyncio.Task[None] | None = None

    async def follow(self, job_id: int) -> AsyncIterator[JobRow]:
        """Each new state of the job, the first at once, until it has ended (or is gone)."""
        subscriber = _Subscriber(job_id)
        self._subscribers.append(subscriber)
        self._ensure_polling()
        try:
            while True:
                row = await subscriber.queue.get()
                if row is None:
                    return
                yield row
                if row.finished:
                    return
        finally:
            self._subscribers.remove(subscriber)

    def _ensure_polling(self) -> None:
        task = self._loop_task
        running = asyncio.get_running_loop()
        if task is None or task.done() or task.get_loop() is not running:
            self._loop_task = running.create_task(self._poll(), name="kb-job-watcher")

    async def _poll(self) -> None:
        while self._subscribers:
            ids = sorted({s.job_id for s in self._subscribers})
            try:
                rows = await asyncio.to_thread(self._read, ids)
            except Exception:
                # The database may be restarting: the steps keep their last line.
                log.warning("reading job progress failed; trying again", exc_info=True)
                rows = None
            if rows is not None:
                for subscriber in list(self._subscribers):
                    row = rows.get(subscriber.job_id)
                    if row is None:
                        subscriber.queue.put_nowait(None)  # deleted with its space
                    elif row.updated_at != subscriber.seen:
                        subscriber.seen = row.updated_at
                        subscriber.queue.put_nowait(row)
            await asyncio.sleep(self.interval)
