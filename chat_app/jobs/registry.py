"""kb's procrastinate tasks and queues, declared on an `App`, timed by the settings.

Queues: `ingest` for indexing, Notion syncs and removals (one at a time per source,
by procrastinate's `lock`, set when they are queued), `maintenance` for the short
periodic tasks, so a long indexing job never delays them.
"""

from __future__ import annotations

from procrastinate import App

from chat_app.jobs.maintenance import remove_old_jobs, retry_stalled, schedule_notion
from chat_app.jobs.retry import JobRetry
from chat_app.jobs.tasks import delete_source_task, index_file_task, notion_sync_task
from chat_app.settings import Settings

__all__ = [
    "QUEUE_INGEST",
    "QUEUE_MAINTENANCE",
    "TASK_DELETE_SOURCE",
    "TASK_INDEX_FILE",
    "TASK_NOTION_SYNC",
    "every",
    "register_tasks",
]

QUEUE_INGEST = "ingest"
QUEUE_MAINTENANCE = "maintenance"
TASK_INDEX_FILE = "kb.index_file"
TASK_NOTION_SYNC = "kb.notion_sync"
TASK_DELETE_SOURCE = "kb.delete_source"
TASK_RETRY_STALLED = "kb.retry_stalled"
TASK_SCHEDULE_NOTION = "kb.schedule_notion"
TASK_CLEANUP = "kb.remove_old_jobs"


def every(seconds: float) -> str:
    """A cron line for "every `seconds`" (procrastinate's 6th column is seconds)."""
    if seconds >= 60:
        return "* * * * *"
    step = max(1, int(seconds))
    return f"* * * * * */{step}"


def register_tasks(app: App, settings: Settings) -> None:
    """Declare kb's tasks (and the periodic ones, timed by the settings) on `app`."""
    retry = JobRetry(max_attempts=settings.job_max_attempts, first_wait=settings.job_retry_seconds)
    for name, make in (
        (TASK_INDEX_FILE, index_file_task),
        (TASK_NOTION_SYNC, notion_sync_task),
        (TASK_DELETE_SOURCE, delete_source_task),
    ):
        app.task(name=name, queue=QUEUE_INGEST, pass_context=True, retry=retry)(make(retry))
    stalled = app.task(
        name=TASK_RETRY_STALLED,
        queue=QUEUE_MAINTENANCE,
        pass_context=True,
        queueing_lock=TASK_RETRY_STALLED,
    )(retry_stalled)
    # Check twice per stall period, at least every minute.
    app.periodic(cron=every(min(60.0, settings.worker_stalled_seconds / 2)), periodic_id="stalled")(
        stalled
    )
    interval = settings.notion_sync_interval_seconds
    if interval is not None:
        schedule = app.task(
            name=TASK_SCHEDULE_NOTION,
            queue=QUEUE_MAINTENANCE,
            pass_context=True,
            queueing_lock=TASK_SCHEDULE_NOTION,
        )(schedule_notion)
        app.periodic(cron=every(min(60.0, interval)), periodic_id="notion")(schedule)
    cleanup = app.task(
        name=TASK_CLEANUP, queue=QUEUE_MAINTENANCE, pass_context=True, queueing_lock=TASK_CLEANUP
    )(remove_old_jobs)
    app.periodic(cron="17 3 * * *", periodic_id="cleanup")(cleanup)
