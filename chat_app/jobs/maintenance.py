"""Periodic upkeep of the queue, run by every worker's `maintenance` queue (deferred once
per period however many workers run: procrastinate's periodic tasks).

- `retry_stalled`: jobs of workers that stopped sending heartbeats go back in the
  queue (or fail, after `KB_JOB_MAX_ATTEMPTS` lost workers);
- `schedule_notion`: queue the Notion syncs that are due (`KB_NOTION_SYNC_INTERVAL_MINUTES`);
- `remove_old_jobs`: forget jobs that ended `KB_JOB_RETENTION_DAYS` ago.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from procrastinate import JobContext
from procrastinate.jobs import Status

from chat_app.jobs.tasks import services_of
from db import jobs as repo

if TYPE_CHECKING:
    from chat_app.jobs.queue import JobQueue
    from chat_app.services import Services

__all__ = ["remove_old_jobs", "retry_stalled", "schedule_notion"]

log = logging.getLogger(__name__)


async def retry_stalled(context: JobContext, timestamp: int) -> dict[str, int]:
    """Jobs of workers that stopped sending heartbeats (killed, machine lost) go back in
    the queue for another worker; one that killed its worker too often fails."""
    services = services_of(context)
    settings = services.settings
    manager = context.app.job_manager
    stalled = await manager.get_stalled_jobs(
        seconds_since_heartbeat=settings.worker_stalled_seconds
    )
    requeued = failed = 0
    for job in stalled:
        assert job.id is not None
        if job.id == context.job.id:
            continue
        if job.attempts + 1 >= settings.job_max_attempts:
            await manager.finish_job(job=job, status=Status.FAILED, delete_job=False)
            await asyncio.to_thread(_mark_lost, services, job.id, give_up=True)
            failed += 1
        else:
            await manager.retry_job(job)
            await asyncio.to_thread(_mark_lost, services, job.id, give_up=False)
            requeued += 1
    if requeued or failed:
        log.warning("jobs of stopped workers: %s queued again, %s failed", requeued, failed)
    return {"requeued": requeued, "failed": failed}


def _mark_lost(services: Services, job_id: int, *, give_up: bool) -> None:
    with services.engine.begin() as conn:
        if give_up:
            reason = "the worker running it stopped during every try (see the worker logs)."
            repo.finish_job(
                conn,
                job_id=job_id,
                status="failed",
                phase="failed",
                message=f"Failed: {reason}",
                error=reason,
            )
        else:
            repo.mark_requeued(
                conn,
                job_id=job_id,
                status="queued",
                message="Queued again: the worker running it stopped; another one will take it.",
                error=None,
            )


def schedule_notion(context: JobContext, timestamp: int) -> dict[str, int]:
    """Queue a sync of every connected space whose last sync is older than the interval
    (`timestamp` is the tick's own time, so a late tick decides as if on time)."""
    services = services_of(context)
    queue: JobQueue = context.additional_context["queue"]
    interval = services.settings.notion_sync_interval_seconds
    if interval is None:
        return {"queued": 0}
    now = datetime.fromtimestamp(timestamp, UTC)
    with services.engine.begin() as conn:
        due = repo.due_notion_syncs(conn, now=now, interval_seconds=interval)
    for space_id in due:
        queue.enqueue_notion_sync(space_id=space_id, requested_by=None, origin="schedule")
    return {"queued": len(due)}


async def remove_old_jobs(context: JobContext, timestamp: int) -> None:
    """Delete jobs that ended more than `KB_JOB_RETENTION_DAYS` ago, failed ones too (their
    rows in `jobs` and any stored file go with them)."""
    days = services_of(context).settings.job_retention_days
    await context.app.job_manager.delete_old_jobs(
        nb_hours=max(1, int(days * 24)),
        include_failed=True,
        include_cancelled=True,
        include_aborted=True,
    )
