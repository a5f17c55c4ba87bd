"""The job layer in the test process: queueing, retries, cancelling, the schedule's
clock, the chat steps that follow jobs (across a reload), and procrastinate's schema.

Workers here run inside the test (procrastinate's `run_worker_async`); the tests
with real worker processes are in tests/test_workers.py.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from procrastinate.exceptions import JobAborted
from procrastinate.jobs import Job
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from chat_app.cli import app as kb_app
from chat_app.handlers.jobs import reattach_jobs, taken_over
from chat_app.handlers.upload import ingest_uploads
from chat_app.jobs.retry import JobRetry
from chat_app.jobs.runner import OneLineForBadInput, wait_for_jobs
from chat_app.jobs.tasks import JobFailed
from chat_app.services import Services
from db import jobs as repo
from db.errors import DatabaseUnavailable
from db.job_schema import SCHEMA_AT, installed_migrations
from db.jobs import JobRow
from ingest.errors import EmptyFile
from ingest.notion.errors import NotionAuthError, NotionUnavailable
from tests.app_fixtures import (
    REACTOR,
    app_services,
    chainlit_context,
    chunk_counts,
    data_layer,
    final_messages,
    make_upload,
    outputs,
    personal_access,
    services,
)
from tests.fake_notion import FakeNotion, Fault
from tests.job_fixtures import run_jobs
from tests.notion_fixtures import build_demo

__all__ = ["app_services", "data_layer", "services"]


async def test_a_queued_file_is_indexed_by_a_worker(
    services: Services, make_user: Callable[..., Any]
) -> None:
    alice = make_user("alice")
    space = personal_access(services, alice.id)
    queue = services.job_queue()
    job_id = queue.enqueue_file(
        user_id=alice.id,
        space_id=space.id,
        source_id="reactor.md",
        data=REACTOR.encode(),
        origin="cli",
    )
    queued = queue.get(job_id)
    assert (queued.status, queued.message) == ("queued", "Queued…")
    with services.engine.begin() as conn:
        assert repo.read_job_file(conn, job_id=job_id) is not None  # stored with the job
    await run_jobs(services)
    row = queue.get(job_id)
    assert (row.status, row.phase, row.attempts) == ("done", "indexed", 1)
    assert row.message == f"Indexed {row.result['chunks']} chunks."
    assert chunk_counts(services.engine, alice.id) == {"reactor.md": row.result["chunks"]}
    with services.engine.begin() as conn:
        assert repo.read_job_file(conn, job_id=job_id) is None  # now kept in source_files


def _job(attempts: int = 0) -> Job:
    return Job(
        id=1, queue="ingest", lock=None, queueing_lock=None, task_name="t", attempts=attempts
    )


def test_retries_are_for_transient_trouble_with_doubling_waits() -> None:
    retry = JobRetry(max_attempts=3, first_wait=10)
    for transient in (
        psycopg.OperationalError("server closed the connection"),
        DatabaseUnavailable("down"),
        NotionUnavailable("503 after retries"),
    ):
        assert retry.get_retry_decision(exception=transient, job=_job()) is not None
    for bad_input in (EmptyFile("a.txt is empty.", file_name="a.txt"), NotionAuthError()):
        assert retry.get_retry_decision(exception=bad_input, job=_job()) is None
    assert retry.get_retry_decision(exception=RuntimeError(), job=_job(attempts=2)) is None
    assert [retry.wait_before(n) for n in (1, 2, 3)] == [10, 20, 40]
    # A worker shutting down hands its job straight back.
    assert retry.get_retry_decision(exception=JobAborted(), job=_job(attempts=2)) is not None


async def test_a_transient_notion_failure_is_retried_and_the_sync_then_succeeds(
    app_services: Callable[..., Services], make_user: Callable[..., Any]
) -> None:
    from ingest.notion.service import connect_notion

    demo = build_demo()
    alice = make_user("alice")
    with FakeNotion(demo.workspace) as fake:
        services = app_services(
            notion_base_url=fake.url,
            notion_requests_per_second=0,
            notion_max_retries=0,
            job_retry_seconds=0.2,
        )
        space = personal_access(services, alice.id)
        connect_notion(
            engine=services.engine,
            user_id=alice.id,
            space_id=space.id,
            token=demo.workspace.token,
            options=services.notion_options(),
        )
        fake.add_fault(Fault(status=503, kind="search", times=1))
        queued = services.job_queue().enqueue_notion_sync(
            space_id=space.id, requested_by=alice.id, origin="cli"
        )
        seen: list[str] = []
        rows = await wait_for_jobs(
            services, [queued.job_id], on_change=lambda r: seen.append(r.status), run_here=True
        )
    row = rows[queued.job_id]
    assert (row.status, row.attempts) == ("done", 2)
    assert "retrying" in seen and row.result["pages_new"] == len(demo.page_ids)


async def test_a_queued_job_can_be_cancelled_and_a_failed_one_retried(
    services: Services, make_user: Callable[..., Any]
) -> None:
    alice = make_user("alice")
    space = personal_access(services, alice.id)
    queue = services.job_queue()
    waiting = queue.enqueue_file(
        user_id=alice.id, space_id=space.id, source_id="a.md", data=REACTOR.encode(), origin="cli"
    )
    broken = queue.enqueue_file(
        user_id=alice.id, space_id=space.id, source_id="empty.txt", data=b"", origin="cli"
    )
    assert queue.cancel(waiting).status == "cancelled"
    await run_jobs(services)
    assert queue.get(waiting).status == "cancelled"
    assert chunk_counts(services.engine, alice.id) == {}  # the cancelled one never ran
    failed = queue.get(broken)
    assert failed.status == "failed" and "empty.txt" in (failed.error or "")

    assert queue.retry(broken).status == "queued"
    await run_jobs(services)
    again = queue.get(broken)
    assert (again.status, again.attempts) == ("failed", 2)  # its stored file, read again
    with pytest.raises(Exception, match="only failed jobs"):
        queue.retry(waiting)


def test_kb_jobs_lists_shows_and_cancels(
    db_url: str, engine: Engine, make_user: Callable[..., Any], tmp_path: Any, monkeypatch: Any
) -> None:
    make_user("alice")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.md").write_text("# Notes\n\nAlpacas hum when they are content.")
    env = {"KB_DATABASE_URL": db_url, "DATABASE_URL": db_url, "KB_DATA_DIR": str(tmp_path)}
    runner = CliRunner()

    queued = runner.invoke(kb_app, ["ingest", "notes.md", "--user", "alice", "--no-wait"], env=env)
    assert queued.exit_code == 0, queued.output
    job_id = int(queued.stdout.split("Queued 1 job(s): ")[1].split()[0])
    listed = runner.invoke(kb_app, ["jobs", "list"], env=env)
    assert listed.exit_code == 0 and "notes.md" in listed.stdout and "queued" in listed.stdout
    assert "0 worker(s) running" in listed.stdout
    cancelled = runner.invoke(kb_app, ["jobs", "cancel", str(job_id)], env=env)
    assert cancelled.exit_code == 0 and "is cancelled" in cancelled.stdout
    shown = runner.invoke(kb_app, ["jobs", "show", str(job_id)], env=env)
    assert shown.exit_code == 0 and "cancelled" in shown.stdout and "alice" in shown.stdout
    again = runner.invoke(kb_app, ["jobs", "retry", str(job_id)], env=env)
    # (`kb` prints KbErrors as one line; the runner calls the app without that wrapper)
    assert "only failed jobs can be retried" in str(again.exception)


def test_the_schedule_queues_a_sync_when_the_interval_has_passed(
    services: Services, make_user: Callable[..., Any], engine: Engine
) -> None:
    # A fake clock: `due_notion_syncs` is asked about chosen instants.
    alice = make_user("alice")
    space = personal_access(services, alice.id)
    hour = 3600.0
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO notion_connections (space_id, connected_by, token_encrypted)"
                " VALUES (:s, :u, 'x')"
            ),
            {"s": space.id, "u": alice.id},
        )
    now = datetime.now(UTC)

    def due(at: datetime) -> list[uuid.UUID]:
        with engine.begin() as conn:
            return repo.due_notion_syncs(conn, now=at, interval_seconds=hour)

    assert due(now) == [space.id]  # never synced
    queued = services.job_queue().enqueue_notion_sync(
        space_id=space.id, requested_by=None, origin="schedule"
    )
    assert due(now + timedelta(hours=5)) == []  # one is queued already
    again = services.job_queue().enqueue_notion_sync(
        space_id=space.id, requested_by=None, origin="schedule"
    )
    assert again.already_queued and again.job_id == queued.job_id
    with engine.begin() as conn:
        repo.finish_job(conn, job_id=queued.job_id, status="done", phase="success", message="ok")
        created = repo.get_job(conn, job_id=queued.job_id)
    assert created is not None
    assert due(created.created_at + timedelta(minutes=59)) == []
    assert due(created.created_at + timedelta(minutes=60)) == [space.id]


async def test_a_reloaded_chat_follows_its_running_upload_again(
    services: Services, data_layer: Any, make_user: Callable[..., Any], tmp_path: Any
) -> None:
    alice = make_user("alice")
    thread_id = str(uuid.uuid4())
    space = personal_access(services, alice.id)
    async with chainlit_context(alice, thread_id=thread_id) as first:
        await data_layer.update_thread(thread_id, user_id=str(alice.id))
        await ingest_uploads(
            [make_upload(tmp_path, "reactor.md", REACTOR)],
            services=services,
            user_id=alice.id,
            space=space,
        )
        step_id = next(m["id"] for m in final_messages(first).values() if m["type"] == "tool")
        # The page is reloaded before any worker took the job: a new session resumes it.
        async with chainlit_context(alice, thread_id=thread_id) as second:
            ended: list[JobRow] = []

            async def on_end(row: JobRow) -> None:
                ended.append(row)

            followers = await reattach_jobs(services, thread_id, on_end=on_end)
            assert len(followers) == 1
            await run_jobs(services)
            for follower in followers:
                await follower
    step = final_messages(second)[step_id]
    assert step["output"].startswith("Indexed ") and step["end"]
    assert [r.status for r in ended] == ["done"]
    # The first session's follower stood down: no summary was posted there.
    assert not any(text.startswith("Indexed **reactor.md**") for text in outputs(first))
    # ...and the take-over ended with the job: a later job with the same id (ids start
    # again in a fresh database) must not be silenced.
    assert not taken_over(ended[0].id)
    with services.engine.begin() as conn:
        assert repo.unfinished_steps_of_thread(conn, thread_id=thread_id) == []


def test_the_migrations_apply_procrastinates_newest_schema(engine: Engine) -> None:
    # Upgrading procrastinate needs a revision for its new scripts (db/job_schema.py).
    assert installed_migrations()[-1] == SCHEMA_AT
    with engine.begin() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        functions = set(
            conn.execute(
                sa.text("SELECT proname FROM pg_proc WHERE proname LIKE 'procrastinate%'")
            ).scalars()
        )
    assert {"procrastinate_jobs", "procrastinate_workers", "jobs", "job_files"} <= tables
    assert {"procrastinate_fetch_job_v2", "procrastinate_retry_job_v2"} <= functions


def test_a_job_failed_on_bad_input_is_one_warning_line_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("procrastinate.worker.test")
    logger.addFilter(OneLineForBadInput())
    for failure in (JobFailed("broken.pdf is not a PDF."), RuntimeError("a bug")):
        try:
            raise failure
        except Exception:
            logger.error("Job kb.index_file[7]() ended with status: Error", exc_info=True)
    bad_input, bug = caplog.records
    assert (bad_input.levelname, bad_input.exc_info) == ("WARNING", None)
    assert bad_input.getMessage().endswith("Error: broken.pdf is not a PDF.")
    assert "Traceback" not in caplog.text.split("\n")[0]
    assert bug.levelname == "ERROR" and bug.exc_info is not None  # real errors keep theirs
