"""When a space's Notion syncs ran and run next, for the chat's and the CLI's status.

The schedule itself is the periodic `schedule_notion` task (chat_app/jobs/tasks.py):
every minute (or every interval, when shorter) it queues a sync of each connected
space whose last sync started `KB_NOTION_SYNC_INTERVAL_MINUTES` ago or more, through
the same job as "Re-sync now". The next run is therefore the last run plus the
interval, rounded up to the next tick, and only while a worker is running.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from chat_app.jobs.describe import when
from chat_app.services import Services
from db import jobs as repo
from db import notion as notion_repo
from db.jobs import JobRow
from db.scoped import user_scope

__all__ = ["NotionSchedule", "notion_schedule"]


@dataclass(frozen=True)
class NotionSchedule:
    interval_seconds: float | None  # None: scheduled syncs are off
    last_run: datetime | None
    next_run: datetime | None
    active: JobRow | None  # a sync queued or running now
    workers: int

    def lines(self) -> list[str]:
        """Plain-text lines: the last and next run (Markdown-safe, no markup)."""
        last = f"Last run: {when(self.last_run)}" if self.last_run else "Last run: never"
        if self.active is not None:
            state = "running now" if self.active.status == "running" else "queued"
            upcoming = f"Next run: {state} (job {self.active.id})"
        elif self.interval_seconds is None:
            upcoming = "Next run: only on request (scheduled syncs are off)"
        else:
            every = f"every {self.interval_seconds / 60:g} min"
            upcoming = f"Next run: {when(self.next_run)} ({every})"
        if self.workers == 0 and (self.active is not None or self.interval_seconds is not None):
            upcoming += "; no worker is running, so nothing runs until one starts"
        return [last, upcoming]


def notion_schedule(
    services: Services, *, user_id: uuid.UUID, space_id: uuid.UUID
) -> NotionSchedule:
    interval = services.settings.notion_sync_interval_seconds
    with user_scope(services.engine, user_id) as conn:
        last = notion_repo.last_sync(conn, space_id=space_id)
        active = repo.active_job(conn, kind="notion_sync", space_id=space_id)
        recent = repo.list_jobs(conn, space_ids=[space_id], kind="notion_sync", limit=1)
    last_run = last.started_at if last else None
    newest = max(
        (t for t in (last_run, recent[0].created_at if recent else None) if t is not None),
        default=None,
    )
    next_run: datetime | None = None
    if interval is not None:
        now = datetime.now(UTC)
        next_run = now if newest is None else max(now, newest + timedelta(seconds=interval))
    return NotionSchedule(
        interval_seconds=interval,
        last_run=last_run,
        next_run=next_run,
        active=active,
        workers=services.job_queue().live_workers(),
    )
