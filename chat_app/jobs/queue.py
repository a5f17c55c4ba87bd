"""Putting work on the queue, and taking it off: what the chat and the CLI call.

Every enqueue is one transaction on our own connection: procrastinate's job row
(inserted with `configure(connection=...)`, procrastinate's transactional-outbox
support), our `jobs` row with the same id, and for files their bytes in `job_files`.
Either all of it is stored or none; a worker anywhere can then run it, and a restart
of everything loses nothing.

procrastinate's `lock` keeps jobs on one source strictly one after the other (two
uploads of the same file, an upload and a removal, two syncs of a space's Notion);
Notion syncs also take a `queueing_lock`, so pressing "Re-sync" while one waits joins
the waiting one instead of queueing another.

Two procrastinate apps with the same tasks: `app` runs workers (an async pool, opened
by the worker only); `_deferrer` only ever inserts on connections we pass it, so
enqueueing never opens a second pool, in the web process or in a worker's thread.
"""

from __future__ import annotations

import mimetypes
import uuid
from dataclasses import dataclass
from pathlib import Path

from procrastinate import App, PsycopgConnector, SyncPsycopgConnector
from procrastinate.exceptions import AlreadyEnqueued
from sqlalchemy.engine import Connection, make_url

from chat_app.jobs.registry import (
    QUEUE_INGEST,
    TASK_DELETE_SOURCE,
    TASK_INDEX_FILE,
    TASK_NOTION_SYNC,
    register_tasks,
)
from chat_app.services import Services
from db import jobs as repo
from db.errors import InvalidInput, NotFound
from db.jobs import JobRow
from db.source_files import FileBytes

__all__ = [
    "PRIORITY",
    "QUEUE_INGEST",
    "Enqueued",
    "JobQueue",
    "libpq_url",
    "notion_lock",
    "source_lock",
]

# Who asked decides who goes first: a person in the chat waits for nobody's folder.
PRIORITY = {"chat": 10, "cli": 0, "schedule": -10}


def libpq_url(database_url: str) -> str:
    """The SQLAlchemy URL as libpq (psycopg) takes it."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def source_lock(space_id: uuid.UUID, source_type: str, source_id: str) -> str:
    return f"kb/source/{space_id}/{source_type}:{source_id}"


def notion_lock(space_id: uuid.UUID) -> str:
    return f"kb/notion/{space_id}"


@dataclass(frozen=True)
class Enqueued:
    job_id: int
    already_queued: bool = False  # an identical job was waiting: this is its id


class JobQueue:
    """kb's job queue on the services' database."""

    def __init__(self, services: Services, *, pool_size: int = 10) -> None:
        self.services = services
        conninfo = libpq_url(services.database_url)
        self.app = App(
            connector=PsycopgConnector(conninfo=conninfo, min_size=1, max_size=pool_size)
        )
        register_tasks(self.app, services.settings)
        self._deferrer = App(connector=SyncPsycopgConnector(conninfo=conninfo))
        register_tasks(self._deferrer, services.settings)

    # -- enqueueing ----------------------------------------------------------------------

    def _defer(
        self,
        connection: Connection,
        task: str,
        *,
        origin: str,
        lock: str | None = None,
        queueing_lock: str | None = None,
    ) -> int:
        raw = connection.connection.driver_connection
        deferrer = self._deferrer.configure_task(
            task,
            lock=lock,
            queueing_lock=queueing_lock,
            priority=PRIORITY.get(origin, 0),
            connection=raw,
        )
        return int(deferrer.defer())

    def enqueue_file(
        self,
        *,
        user_id: uuid.UUID,
        space_id: uuid.UUID,
        source_id: str,
        data: bytes,
        origin: str,
        mime: str | None = None,
        thread_id: str | None = None,
        step_id: str | None = None,
    ) -> int:
        """Store the file and queue its indexing into `space_id` as `source_id`."""
        name = Path(source_id).name
        file = FileBytes(filename=name, mime=mime or mimetypes.guess_type(name)[0], data=data)
        with self.services.engine.begin() as conn:
            job_id = self._defer(
                conn,
                TASK_INDEX_FILE,
                origin=origin,
                lock=source_lock(space_id, "file", source_id),
            )
            repo.create_job(
                conn,
                job_id=job_id,
                kind="index_file",
                space_id=space_id,
                requested_by=user_id,
                origin=origin,
                title=source_id,
                source_type="file",
                source_id=source_id,
                thread_id=thread_id,
                step_id=step_id,
                message="Queued…",
            )
            repo.save_job_file(conn, job_id=job_id, file=file)
        return job_id

    def enqueue_notion_sync(
        self,
        *,
        space_id: uuid.UUID,
        requested_by: uuid.UUID | None,
        origin: str,
        thread_id: str | None = None,
        step_id: str | None = None,
    ) -> Enqueued:
        """Queue a sync of the space's Notion (None: the schedule's); when one is already
        waiting, that one is returned."""
        with self.services.engine.begin() as conn:
            try:
                with conn.begin_nested():
                    job_id = self._defer(
                        conn,
                        TASK_NOTION_SYNC,
                        origin=origin,
                        lock=notion_lock(space_id),
                        queueing_lock=notion_lock(space_id),
                    )
            except AlreadyEnqueued:
                waiting = repo.active_job(conn, kind="notion_sync", space_id=space_id)
                if waiting is not None:
                    return Enqueued(waiting.id, already_queued=True)
                raise
            repo.create_job(
                conn,
                job_id=job_id,
                kind="notion_sync",
                space_id=space_id,
                requested_by=requested_by,
                origin=origin,
                title="Notion sync",
                thread_id=thread_id,
                step_id=step_id,
                message="Queued…",
            )
        return Enqueued(job_id)

    def enqueue_removal(
        self,
        *,
        user_id: uuid.UUID,
        space_id: uuid.UUID,
        source_type: str,
        source_id: str,
        title: str,
        origin: str,
        thread_id: str | None = None,
    ) -> int:
        """Queue the removal of a source (after any indexing of it that is queued)."""
        with self.services.engine.begin() as conn:
            job_id = self._defer(
                conn,
                TASK_DELETE_SOURCE,
                origin=origin,
                lock=source_lock(space_id, source_type, source_id),
            )
            repo.create_job(
                conn,
                job_id=job_id,
                kind="delete_source",
                space_id=space_id,
                requested_by=user_id,
                origin=origin,
                title=title,
                source_type=source_type,
                source_id=source_id,
                thread_id=thread_id,
                message="Queued…",
            )
        return job_id

    # -- managing ------------------------------------------------------------------------

    def get(self, job_id: int) -> JobRow:
        with self.services.engine.begin() as conn:
            return _existing(conn, job_id)

    def cancel(self, job_id: int) -> JobRow:
        """Cancel a waiting job at once; ask a running one to stop (it rolls back)."""
        with self.services.engine.begin() as conn:
            row = _existing(conn, job_id)
            if row.finished:
                raise InvalidInput(f"Job {job_id} has ended already ({row.status}).")
            raw = conn.connection.driver_connection
            self._deferrer.job_manager.cancel_job_by_id(job_id, abort=True, connection=raw)
            status = repo.queue_status(conn, job_id=job_id)
            if status == "cancelled":
                repo.finish_job(
                    conn, job_id=job_id, status="cancelled", phase="cancelled", message="Cancelled."
                )
            else:
                repo.set_progress(
                    conn,
                    job_id=job_id,
                    phase=row.phase,
                    message="Cancelling…",
                    done=row.done,
                    total=row.total,
                )
            return _existing(conn, job_id)

    def retry(self, job_id: int) -> JobRow:
        """Put a failed job back in the queue (its file, if any, is still stored)."""
        with self.services.engine.begin() as conn:
            row = _existing(conn, job_id)
            status = repo.queue_status(conn, job_id=job_id)
            if row.status != "failed" or status != "failed":
                raise InvalidInput(
                    f"Job {job_id} is {row.status}: only failed jobs can be retried.",
                    hint="Start a new one instead (upload the file again, or sync again).",
                )
            repo.requeue_failed(conn, job_id=job_id)
            repo.mark_requeued(
                conn, job_id=job_id, status="queued", message="Queued again (retry).", error=None
            )
            return _existing(conn, job_id)

    def live_workers(self) -> int:
        """Workers alive now (a heartbeat within the stall limit)."""
        with self.services.engine.begin() as conn:
            return repo.live_workers(
                conn, within_seconds=self.services.settings.worker_stalled_seconds
            )


def _existing(conn: Connection, job_id: int) -> JobRow:
    """The job's row, or the one message `kb jobs` gives for an unknown id."""
    row = repo.get_job(conn, job_id=job_id)
    if row is None:
        raise NotFound(f"No job {job_id}.", hint="See `kb jobs list`.")
    return row
