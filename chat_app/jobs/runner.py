"""Running jobs: worker processes (`kb worker`, and the ones `kb serve` starts), a
worker inside another program (tests, `kb ingest` when none is running), and waiting
for jobs to end.

A worker process runs two procrastinate workers on one event loop: `ingest` (the
indexing, syncs and removals, `KB_WORKER_CONCURRENCY` at once) and `maintenance`
(the short periodic tasks), so the schedule and the recovery of dead workers' jobs
never wait behind a long indexing job. It lowers its own CPU priority first
(`KB_WORKER_NICE`): on a shared machine the chat's questions go first.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from typing import Any

from chat_app.jobs.queue import JobQueue
from chat_app.jobs.registry import QUEUE_INGEST, QUEUE_MAINTENANCE
from chat_app.jobs.tasks import JobFailed
from chat_app.services import Services
from db import jobs as repo
from db.job_schema import check_job_schema
from db.jobs import JobRow

__all__ = [
    "SHUTDOWN_GRACE_S",
    "lower_priority",
    "run_worker_process",
    "run_workers",
    "wait_for_jobs",
    "work_until_idle",
]

log = logging.getLogger(__name__)

#: On SIGTERM, running jobs get this long to finish; then they stop (rolled back) and
#: go back to the queue for another worker.
SHUTDOWN_GRACE_S = 10.0


def lower_priority(services: Services) -> None:
    """Nice this process and cap torch's threads, as the settings say."""
    settings = services.settings
    if settings.worker_nice:
        with suppress(OSError):
            os.nice(settings.worker_nice)
    if settings.worker_torch_threads:
        import torch

        torch.set_num_threads(settings.worker_torch_threads)


def _worker_options(
    services: Services, queue: JobQueue, name: str, queues: Sequence[str], concurrency: int
) -> dict[str, Any]:
    settings = services.settings
    return {
        "queues": list(queues),
        "name": name,
        "concurrency": concurrency,
        "additional_context": {"services": services, "queue": queue},
        "install_signal_handlers": False,
        "update_heartbeat_interval": settings.worker_heartbeat_seconds,
        "stalled_worker_timeout": settings.worker_stalled_seconds,
        "shutdown_graceful_timeout": SHUTDOWN_GRACE_S,
        # New jobs arrive by LISTEN/NOTIFY; polling is only the fallback.
        "fetch_job_polling_interval": 5.0,
        "abort_job_polling_interval": 2.0,
    }


async def run_workers(
    services: Services,
    *,
    concurrency: int,
    stop: asyncio.Event,
    name: str | None = None,
    maintenance: bool = True,
) -> None:
    """Run an ingest worker (and a maintenance one) until `stop` is set, then shut
    down gracefully. The queue's pool is opened and closed here."""
    _one_line_for_bad_input()
    queue = services.job_queue()
    base = name or f"{socket.gethostname()}:{os.getpid()}"
    async with queue.app.open_async():
        workers = [
            asyncio.create_task(
                queue.app.run_worker_async(
                    **_worker_options(
                        services, queue, f"{base}/ingest", [QUEUE_INGEST], concurrency
                    )
                ),
                name="kb-worker-ingest",
            )
        ]
        if maintenance:
            workers.append(
                asyncio.create_task(
                    queue.app.run_worker_async(
                        **_worker_options(
                            services, queue, f"{base}/maintenance", [QUEUE_MAINTENANCE], 1
                        )
                    ),
                    name="kb-worker-maintenance",
                )
            )
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait([stopping, *workers], return_when=asyncio.FIRST_COMPLETED)
        for task in workers:
            task.cancel()
        results = await asyncio.gather(*workers, return_exceptions=True)
        stopping.cancel()
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                raise result


class OneLineForBadInput(logging.Filter):
    """A job that fails on bad input (`JobFailed`: a corrupt file, missing rights) is
    the user's news, stored on the job and shown in the chat. procrastinate logs every
    failed job as an error with its traceback; for these the log gets one warning line
    with the reason instead, so real errors stand out."""

    def filter(self, record: logging.LogRecord) -> bool:
        failure = record.exc_info[1] if record.exc_info else None
        if isinstance(failure, JobFailed):
            record.msg, record.args = f"{record.getMessage()}: {failure}", ()
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _one_line_for_bad_input() -> None:
    """Every worker of this process (`kb worker`, `kb ingest` running its own jobs,
    `work_until_idle`) logs bad input as one line; the filter is added once."""
    logger = logging.getLogger("procrastinate.worker")
    if not any(isinstance(f, OneLineForBadInput) for f in logger.filters):
        logger.addFilter(OneLineForBadInput())


def run_worker_process(services: Services, *, concurrency: int, name: str | None = None) -> None:
    """`kb worker`: load the model, then run until SIGINT or SIGTERM."""
    check_job_schema()
    lower_priority(services)
    services.embeddings  # noqa: B018 (load the model before taking jobs)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_workers(services, concurrency=concurrency, stop=stop, name=name)

    services.run(main())


async def work_until_idle(services: Services, *, queues: Sequence[str] = (QUEUE_INGEST,)) -> None:
    """Run the queued jobs in this process until none is left (tests, one-off commands)."""
    _one_line_for_bad_input()
    queue = services.job_queue()
    async with queue.app.open_async():
        await queue.app.run_worker_async(
            **_worker_options(services, queue, f"inline:{os.getpid()}", queues, 1), wait=False
        )


async def wait_for_jobs(
    services: Services,
    job_ids: Sequence[int],
    *,
    on_change: Callable[[JobRow], Awaitable[None] | None] | None = None,
    run_here: bool | None = None,
    poll_s: float = 0.3,
) -> dict[int, JobRow]:
    """Wait until every job ended; `on_change` sees each new state of each job.

    With no live worker (`run_here=None` checks), a worker runs in this process
    until the jobs are done, so one-off commands work on a machine without `kb worker`.
    """
    queue = services.job_queue()
    if run_here is None:
        run_here = await asyncio.to_thread(queue.live_workers) == 0
    stop = asyncio.Event()
    worker = (
        asyncio.create_task(run_workers(services, concurrency=1, stop=stop, maintenance=False))
        if run_here
        else None
    )
    seen: dict[int, Any] = {}
    rows: dict[int, JobRow] = {}
    try:
        while True:
            rows = await asyncio.to_thread(_read, services, job_ids)
            for job_id, row in rows.items():
                if seen.get(job_id) != row.updated_at:
                    seen[job_id] = row.updated_at
                    if on_change is not None:
                        outcome = on_change(row)
                        if outcome is not None:
                            await outcome
            if all(row.finished for row in rows.values()):
                return rows
            if worker is not None and worker.done():
                worker.result()  # the worker failed: raise its error
            await asyncio.sleep(poll_s)
    finally:
        if worker is not None:
            stop.set()
            await worker


def _read(services: Services, job_ids: Sequence[int]) -> dict[int, JobRow]:
    with services.engine.begin() as conn:
        return repo.jobs_by_ids(conn, job_ids=job_ids)
