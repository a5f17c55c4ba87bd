"""Repository for `jobs` (kb's view of each background job) and `job_files`.

A job row is written in the transaction that enqueues the procrastinate job (same id),
updated by the worker that runs it (progress, outcome) and read by the chat, the CLI
and the Notion status. Workers and the enqueueing code write as the table owner;
people read through `user_scope` (row-level security: members of the job's space).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from db.models import Job, JobFile, NotionConnection, NotionSync, Space, User
from db.source_files import FileBytes

__all__ = [
    "ACTIVE",
    "JobKind",
    "JobRow",
    "JobStatus",
    "active_job",
    "create_job",
    "delete_job_file",
    "due_notion_syncs",
    "finish_job",
    "get_job",
    "jobs_by_ids",
    "list_jobs",
    "live_workers",
    "mark_requeued",
    "mark_started",
    "queue_status",
    "read_job_file",
    "requeue_failed",
    "save_job_file",
    "scheduled_sync_user",
    "set_progress",
    "set_step_final",
    "unfinished_steps_of_thread",
]

JobKind = Literal["index_file", "notion_sync", "delete_source"]
JobStatus = Literal["queued", "running", "retrying", "done", "failed", "cancelled"]
#: Statuses of a job that has not ended yet.
ACTIVE: tuple[JobStatus, ...] = ("queued", "running", "retrying")

_jobs = cast("sa.Table", Job.__table__)
_files = cast("sa.Table", JobFile.__table__)


@dataclass(frozen=True)
class JobRow:
    """One job as people see it."""

    id: int
    kind: JobKind
    space_id: uuid.UUID
    space_name: str | None
    space_kind: str | None
    requested_by: uuid.UUID | None
    requested_by_login: str | None
    origin: str
    title: str
    source_type: str | None
    source_id: str | None
    status: JobStatus
    phase: str
    done: int | None
    total: int | None
    message: str | None
    error: str | None
    result: dict[str, Any]
    attempts: int
    worker: str | None
    thread_id: str | None
    step_id: str | None
    step_final: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime

    @property
    def finished(self) -> bool:
        return self.status not in ACTIVE


def _select() -> sa.Select[Any]:
    return (
        sa.select(
            _jobs,
            Space.name.label("space_name"),
            Space.kind.label("space_kind"),
            User.identifier.label("requested_by_login"),
        )
        .outerjoin(Space, Space.id == _jobs.c.space_id)
        .outerjoin(User, User.id == _jobs.c.requested_by)
    )


def _row(r: Any) -> JobRow:
    m = r._mapping
    return JobRow(**{name: m[name] for name in JobRow.__dataclass_fields__})


def create_job(
    connection: Connection,
    *,
    job_id: int,
    kind: JobKind,
    space_id: uuid.UUID,
    requested_by: uuid.UUID | None,
    origin: str,
    title: str,
    source_type: str | None = None,
    source_id: str | None = None,
    thread_id: str | None = None,
    step_id: str | None = None,
    message: str | None = None,
) -> None:
    connection.execute(
        sa.insert(_jobs).values(
            id=job_id,
            kind=kind,
            space_id=space_id,
            requested_by=requested_by,
            origin=origin,
            title=title,
            source_type=source_type,
            source_id=source_id,
            thread_id=thread_id,
            step_id=step_id,
            message=message,
        )
    )


def save_job_file(connection: Connection, *, job_id: int, file: FileBytes) -> None:
    connection.execute(
        sa.insert(_files).values(
            job_id=job_id,
            filename=file.filename,
            mime=file.mime,
            size=len(file.data),
            sha256=file.sha256,
            data=file.data,
        )
    )


def read_job_file(connection: Connection, *, job_id: int) -> FileBytes | None:
    row = connection.execute(
        sa.select(_files.c.filename, _files.c.mime, _files.c.data).where(_files.c.job_id == job_id)
    ).first()
    if row is None:
        return None
    return FileBytes(filename=row.filename, mime=row.mime, data=bytes(row.data))


def delete_job_file(connection: Connection, *, job_id: int) -> None:
    connection.execute(sa.delete(_files).where(_files.c.job_id == job_id))


def get_job(connection: Connection, *, job_id: int) -> JobRow | None:
    row = connection.execute(_select().where(_jobs.c.id == job_id)).first()
    return _row(row) if row is not None else None


def jobs_by_ids(connection: Connection, *, job_ids: Sequence[int]) -> dict[int, JobRow]:
    if not job_ids:
        return {}
    rows = connection.execute(_select().where(_jobs.c.id.in_(list(job_ids))))
    return {r.id: _row(r) for r in rows}


def list_jobs(
    connection: Connection,
    *,
    space_ids: Sequence[uuid.UUID] | None = None,
    requested_by: uuid.UUID | None = None,
    statuses: Sequence[str] | None = None,
    kind: str | None = None,
    limit: int = 20,
) -> list[JobRow]:
    """The newest jobs first, filtered by space, requester, status and kind."""
    query = _select().order_by(_jobs.c.created_at.desc(), _jobs.c.id.desc()).limit(limit)
    if space_ids is not None:
        query = query.where(_jobs.c.space_id.in_(list(space_ids)))
    if requested_by is not None:
        query = query.where(_jobs.c.requested_by == requested_by)
    if statuses:
        query = query.where(_jobs.c.status.in_(list(statuses)))
    if kind is not None:
        query = query.where(_jobs.c.kind == kind)
    return [_row(r) for r in connection.execute(query)]


def active_job(
    connection: Connection,
    *,
    kind: JobKind,
    space_id: uuid.UUID,
    source_type: str | None = None,
    source_id: str | None = None,
) -> JobRow | None:
    """The oldest job of this kind (and source) that has not ended, if any."""
    query = (
        _select()
        .where(_jobs.c.kind == kind, _jobs.c.space_id == space_id, _jobs.c.status.in_(ACTIVE))
        .order_by(_jobs.c.id)
        .limit(1)
    )
    if source_type is not None:
        query = query.where(_jobs.c.source_type == source_type)
    if source_id is not None:
        query = query.where(_jobs.c.source_id == source_id)
    row = connection.execute(query).first()
    return _row(row) if row is not None else None


def unfinished_steps_of_thread(connection: Connection, *, thread_id: str) -> list[JobRow]:
    """Jobs of a chat thread whose step does not show the final state yet."""
    rows = connection.execute(
        _select()
        .where(
            _jobs.c.thread_id == thread_id,
            _jobs.c.step_id.is_not(None),
            ~_jobs.c.step_final,
        )
        .order_by(_jobs.c.id)
    )
    return [_row(r) for r in rows]


def _update(connection: Connection, job_id: int, **values: Any) -> bool:
    result = connection.execute(
        sa.update(_jobs).where(_jobs.c.id == job_id).values(updated_at=sa.func.now(), **values)
    )
    return bool(result.rowcount)


def mark_started(connection: Connection, *, job_id: int, worker: str | None, message: str) -> bool:
    """A worker took the job (again: `attempts` counts the starts); False when the row is gone."""
    return _update(
        connection,
        job_id,
        worker=worker,
        status="running",
        phase="starting",
        message=message,
        error=None,
        done=None,
        total=None,
        attempts=_jobs.c.attempts + 1,
        started_at=sa.func.now(),
        finished_at=None,
    )


def set_progress(
    connection: Connection,
    *,
    job_id: int,
    phase: str,
    message: str,
    done: int | None = None,
    total: int | None = None,
) -> None:
    _update(connection, job_id, phase=phase, message=message, done=done, total=total)


def finish_job(
    connection: Connection,
    *,
    job_id: int,
    status: JobStatus,
    phase: str,
    message: str,
    error: str | None = None,
    result: dict[str, Any] | None = None,
) -> None:
    values: dict[str, Any] = {
        "status": status,
        "phase": phase,
        "message": message,
        "error": error,
        "finished_at": sa.func.now(),
    }
    if result is not None:
        values["result"] = result
    _update(connection, job_id, **values)


def mark_requeued(
    connection: Connection, *, job_id: int, status: JobStatus, message: str, error: str | None
) -> None:
    """Back in the queue: retried after a transient error, a lost worker, or by hand."""
    _update(
        connection,
        job_id,
        status=status,
        phase="queued",
        message=message,
        error=error,
        done=None,
        total=None,
        finished_at=None,
        step_final=False,
    )


def set_step_final(connection: Connection, *, job_id: int) -> None:
    connection.execute(sa.update(_jobs).where(_jobs.c.id == job_id).values(step_final=True))


# -- the queue itself (procrastinate's tables) -------------------------------------------


def live_workers(connection: Connection, *, within_seconds: float) -> int:
    """Workers whose heartbeat is more recent than `within_seconds`."""
    return int(
        connection.execute(
            sa.text(
                "SELECT count(*) FROM procrastinate_workers"
                " WHERE last_heartbeat > now() - make_interval(secs => :s)"
            ),
            {"s": within_seconds},
        ).scalar_one()
    )


def queue_status(connection: Connection, *, job_id: int) -> str | None:
    """procrastinate's status of a job (todo, doing, succeeded, failed, cancelled,
    aborting, aborted), or None when it is gone."""
    return connection.execute(
        sa.text("SELECT status::text FROM procrastinate_jobs WHERE id = :id"), {"id": job_id}
    ).scalar_one_or_none()


def requeue_failed(connection: Connection, *, job_id: int) -> None:
    """Put a failed job back in the queue now, with procrastinate's own function (the one
    `JobManager.retry_job_by_id` calls), keeping its history and lock."""
    connection.execute(
        sa.text("SELECT procrastinate_retry_job_v2(:id, now(), NULL, NULL, NULL)"), {"id": job_id}
    )


def due_notion_syncs(
    connection: Connection, *, now: datetime, interval_seconds: float
) -> list[uuid.UUID]:
    """Connected spaces whose last Notion sync (run or job, whichever is newer) started
    `interval_seconds` or more before `now`, and that have no sync queued or running."""
    last_run = (
        sa.select(sa.func.max(NotionSync.started_at))
        .where(NotionSync.space_id == NotionConnection.space_id)
        .correlate(NotionConnection)
        .scalar_subquery()
    )
    last_job = (
        sa.select(sa.func.max(_jobs.c.created_at))
        .where(_jobs.c.kind == "notion_sync", _jobs.c.space_id == NotionConnection.space_id)
        .correlate(NotionConnection)
        .scalar_subquery()
    )
    active = sa.exists().where(
        _jobs.c.kind == "notion_sync",
        _jobs.c.space_id == NotionConnection.space_id,
        _jobs.c.status.in_(ACTIVE),
    )
    newest = sa.func.greatest(last_run, last_job)
    due_before = sa.literal(now) - sa.func.make_interval(0, 0, 0, 0, 0, 0, interval_seconds)
    rows = connection.execute(
        sa.select(NotionConnection.space_id)
        .where(~active, sa.or_(newest.is_(None), newest <= due_before))
        .order_by(NotionConnection.space_id)
    )
    return list(rows.scalars())


def scheduled_sync_user(connection: Connection, *, space_id: uuid.UUID) -> uuid.UUID | None:
    """Who a scheduled Notion sync of the space runs as: the person who connected it."""
    return connection.execute(
        sa.select(NotionConnection.connected_by).where(NotionConnection.space_id == space_id)
    ).scalar_one_or_none()
