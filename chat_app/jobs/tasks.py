"""The work kb's jobs do (index a file, sync Notion, remove a source), and what each one
tells people.

Each job has a row in `jobs` (same id as procrastinate's) with everything the task
needs: which space, on whose behalf, which source; an uploaded file's bytes wait in
`job_files`. A task reads its row, does the work with the worker's `Services` (the
embedding model is loaded once per worker process), and keeps the row current:
progress while it runs, then the outcome, or the reason it failed or will be retried.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from procrastinate import JobContext
from procrastinate.exceptions import JobAborted
from procrastinate.job_context import AbortReason

from chat_app.jobs.describe import file_result_line, notion_report_line
from chat_app.jobs.progress import JobProgress, JobStopping
from chat_app.jobs.retry import JobRetry
from db import jobs as repo
from db.errors import KbError
from db.jobs import JobRow
from db.scoped import user_scope
from db.spaces import require_role, space_access
from ingest.files import ingest_file
from ingest.indexing import delete_source

if TYPE_CHECKING:
    from chat_app.services import Services

__all__ = ["JobFailed", "delete_source_task", "index_file_task", "notion_sync_task", "services_of"]

log = logging.getLogger(__name__)


class JobFailed(KbError):
    """The job cannot succeed as asked (bad input, missing rights): not retried."""


@dataclass(frozen=True)
class Outcome:
    phase: str
    message: str
    result: dict[str, Any] = field(default_factory=dict)


# -- running one job -------------------------------------------------------------------


@dataclass
class _Run:
    """One attempt at one job: its row, the worker's services, its progress reporter."""

    context: JobContext
    services: Services
    row: JobRow
    progress: JobProgress

    @property
    def job_id(self) -> int:
        return self.row.id

    def requester(self) -> uuid.UUID:
        if self.row.requested_by is None:
            raise JobFailed(
                "The account that asked for this job no longer exists.",
                hint="Ask again from another account.",
            )
        return self.row.requested_by

    def require_editor(self, user_id: uuid.UUID, action: str) -> None:
        with user_scope(self.services.engine, user_id) as conn:
            access = space_access(conn, user_id=user_id, space_id=self.row.space_id)
        require_role(access, "editor", action=action)


def services_of(context: JobContext) -> Services:
    """The worker's `Services`, handed to every task in its context."""
    return context.additional_context["services"]


def _job_task(
    body: Callable[[_Run], Outcome], retry: JobRetry
) -> Callable[[JobContext], dict[str, Any]]:
    """Wrap a task body: start the row, run, and record the outcome or the failure."""

    def task(context: JobContext) -> dict[str, Any]:
        services = services_of(context)
        job = context.job
        assert job.id is not None
        engine = services.engine
        with engine.begin() as conn:
            started = repo.mark_started(
                conn,
                job_id=job.id,
                worker=context.worker_name,
                message="Starting…",
            )
            row = repo.get_job(conn, job_id=job.id)
        if not started or row is None:
            # The space (and with it the job's row) was deleted while it waited.
            return {"skipped": "the job's space no longer exists"}
        run = _Run(
            context=context,
            services=services,
            row=row,
            progress=JobProgress(engine, job.id, should_stop=context.should_abort),
        )
        try:
            outcome = body(run)
            if context.should_abort():
                raise JobStopping("asked to stop")
        except BaseException as error:
            _record_failure(run, error, retry)
            if isinstance(error, JobStopping) or context.should_abort():
                raise JobAborted(str(error)) from error
            raise
        with engine.begin() as conn:
            repo.delete_job_file(conn, job_id=job.id)
            repo.finish_job(
                conn,
                job_id=job.id,
                status="done",
                phase=outcome.phase,
                message=outcome.message,
                result=outcome.result,
            )
        if row.requested_by is not None:
            # Read replicas: the person's next question sees what this job wrote.
            services.note_writes([row.requested_by])
        return outcome.result

    task.__name__ = body.__name__.lstrip("_")
    return task


def _reason(error: BaseException) -> str:
    if isinstance(error, KbError):
        return " ".join(str(error).split())
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _record_failure(run: _Run, error: BaseException, retry: JobRetry) -> None:
    context, job = run.context, run.context.job
    engine = run.services.engine
    stopping = isinstance(error, JobStopping) or context.should_abort()
    with engine.begin() as conn:
        if stopping and context.abort_reason() == AbortReason.SHUTDOWN:
            repo.mark_requeued(
                conn,
                job_id=run.job_id,
                status="queued",
                message="Queued again: the worker stopped; another one will take it.",
                error=None,
            )
        elif stopping:
            repo.finish_job(
                conn, job_id=run.job_id, status="cancelled", phase="cancelled", message="Cancelled."
            )
        else:
            reason = _reason(error)
            decision = retry.get_retry_decision(exception=error, job=job)
            if decision is not None:
                wait = retry.wait_before(job.attempts + 1)
                repo.mark_requeued(
                    conn,
                    job_id=run.job_id,
                    status="retrying",
                    message=f"Will retry in {wait:g} s (try {job.attempts + 2} of "
                    f"{retry.max_attempts}): {reason}",
                    error=reason,
                )
                log.warning("job %s failed, will retry: %s", run.job_id, reason)
            else:
                repo.finish_job(
                    conn,
                    job_id=run.job_id,
                    status="failed",
                    phase="failed",
                    message=f"Failed: {reason}",
                    error=reason,
                )
                if not isinstance(error, KbError):
                    log.error("job %s failed", run.job_id, exc_info=error)


# -- the three kinds of work -------------------------------------------------------------


def _index_file(run: _Run) -> Outcome:
    user_id = run.requester()
    run.require_editor(user_id, "add sources")
    services, row = run.services, run.row
    with services.engine.begin() as conn:
        file = repo.read_job_file(conn, job_id=run.job_id)
    if file is None or row.source_id is None:
        raise JobFailed(
            f"The file of this job ({row.title}) is no longer stored.", hint="Upload it again."
        )
    run.progress("reading", "Reading…")
    embeddings = services.embeddings  # loaded once per worker process
    with tempfile.TemporaryDirectory(prefix="kb-job-") as tmp:
        # The loaders pick the format from the name: keep the file's own name.
        path = Path(tmp) / (Path(row.source_id).name or "upload")
        path.write_bytes(file.data)
        result = ingest_file(
            path,
            engine=services.engine,
            embeddings=embeddings,
            user_id=user_id,
            space_id=row.space_id,
            options=services.ingest_options(),
            display_name=row.source_id,
            progress=run.progress.from_ingest,
        )
    if run.context.should_abort():
        raise JobStopping("asked to stop")
    if result.status == "error":
        message = result.error or f"{row.title} could not be indexed."
        if result.retryable:
            raise RuntimeError(message)
        raise JobFailed(message)
    return Outcome(phase=result.status, message=file_result_line(result), result=asdict(result))


def _notion_sync(run: _Run) -> Outcome:
    from ingest.notion.service import sync_notion

    services, row = run.services, run.row
    if row.requested_by is not None:
        user_id = row.requested_by
        run.require_editor(user_id, "re-sync Notion")
    else:
        with services.engine.begin() as conn:
            connected_by = repo.scheduled_sync_user(conn, space_id=row.space_id)
        if connected_by is None:
            raise JobFailed(
                "Notion is not connected here any more, or the account that connected it "
                "was deleted.",
                hint="An editor of the space can connect Notion again.",
            )
        user_id = connected_by
        try:
            run.require_editor(user_id, "re-sync Notion")
        except KbError:
            raise JobFailed(
                "The person who connected Notion here is no longer an editor of the space, "
                "so scheduled syncs stopped.",
                hint="An editor of the space can connect Notion again.",
            ) from None
    run.progress("syncing", "Listing pages shared with the integration…")
    report = sync_notion(
        engine=services.engine,
        embeddings=services.embeddings,
        user_id=user_id,
        space_id=row.space_id,
        options=services.notion_options(),
        progress=run.progress.from_notion,
    )
    result = {
        "status": report.status,
        "pages_seen": report.pages_seen,
        "pages_new": report.pages_new,
        "pages_updated": report.pages_updated,
        "pages_unchanged": report.pages_unchanged,
        "pages_removed": report.pages_removed,
        "pages_failed": report.pages_failed,
        "seconds": round(report.seconds, 1),
        "errors": list(report.errors)[:20],
    }
    return Outcome(phase=report.status, message=notion_report_line(report), result=result)


def _delete_source(run: _Run) -> Outcome:
    row = run.row
    user_id = run.requester()
    run.require_editor(user_id, "remove sources")
    assert row.source_id is not None
    run.progress("removing", f"Removing {row.title}…")
    removed = delete_source(
        engine=run.services.engine,
        user_id=user_id,
        space_id=row.space_id,
        source_id=row.source_id,
        source_type=row.source_type,
    )
    if removed == 0:
        return Outcome("removed", f"{row.title} was already gone.", {"removed": 0})
    return Outcome("removed", f"Removed {row.title} ({removed} chunks).", {"removed": removed})


def index_file_task(retry: JobRetry) -> Callable[[JobContext], dict[str, Any]]:
    return _job_task(_index_file, retry)


def notion_sync_task(retry: JobRetry) -> Callable[[JobContext], dict[str, Any]]:
    return _job_task(_notion_sync, retry)


def delete_source_task(retry: JobRetry) -> Callable[[JobContext], dict[str, Any]]:
    return _job_task(_delete_source, retry)
