"""Real worker processes (`kb worker` subprocesses, real embedding model) on one queue.

Jobs are queued by the test (as the chat and `kb ingest` queue them), workers run
them, and the assertions read the database: procrastinate's event log says who
started what, our `jobs` rows say how it ended, the chunks say what was indexed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from chat_app.jobs.queue import JobQueue
from chat_app.services import Services
from db import jobs as repo
from db.jobs import JobRow
from tests.app_fixtures import app_services, chunk_counts, personal_access
from tests.cli import clean_env
from tests.fake_notion import FakeNotion
from tests.notion_fixtures import build_demo

__all__ = ["app_services"]

pytestmark = pytest.mark.model

# Only so that a broken run fails instead of hanging: never a measure of speed.
GIVE_UP_S = 900


class Workers:
    """Starts `kb worker` processes against the test database; stops them all at the end."""

    def __init__(self, db_url: str, folder: Path, **settings: str) -> None:
        self.db_url = db_url
        self.folder = folder
        self.settings = {
            "KB_DATA_DIR": str(folder / "data"),
            "KB_WORKER_HEARTBEAT_SECONDS": "1",
            "KB_WORKER_STALLED_SECONDS": "4",
            "KB_WORKER_NICE": "0",
            "KB_NOTION_SYNC_INTERVAL_MINUTES": "off",
            **settings,
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, **settings: str) -> subprocess.Popen[bytes]:
        log = (self.folder / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "chat_app.cli", "worker", "--name", name],
            env=clean_env(self.db_url, **(self.settings | settings)),
            cwd=self.folder,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes[name] = process
        return process

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None and process.returncode != -signal.SIGKILL:
                raise AssertionError(f"worker {name} exited:\n{self.log(name)}")

    def kill(self, name: str) -> None:
        os.killpg(self.processes[name].pid, signal.SIGKILL)
        self.processes[name].wait()

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture
def workers(db_url: str, tmp_path: Path) -> Iterator[Callable[..., Workers]]:
    made: list[Workers] = []

    def factory(**settings: str) -> Workers:
        made.append(Workers(db_url, tmp_path, **settings))
        return made[-1]

    yield factory
    for group in made:
        group.stop_all()


def wait_until(condition: Callable[[], bool], workers: Workers, what: str) -> None:
    """Poll `condition` (the workers must stay alive meanwhile)."""
    deadline = time.monotonic() + GIVE_UP_S
    while not condition():
        workers.check_alive()
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {n}\n{workers.log(n)[-3000:]}" for n in workers.processes)
            raise AssertionError(f"gave up waiting for {what}\n{logs}")
        time.sleep(0.2)


def live_workers(engine: Engine) -> int:
    with engine.begin() as conn:
        return repo.live_workers(conn, within_seconds=3)


def rows(engine: Engine, ids: list[int]) -> dict[int, JobRow]:
    with engine.begin() as conn:
        return repo.jobs_by_ids(conn, job_ids=ids)


def started_events(engine: Engine) -> dict[int, int]:
    """procrastinate's log: how many times each job was started."""
    with engine.begin() as conn:
        found = conn.execute(
            sa.text(
                "SELECT job_id, count(*) FROM procrastinate_events"
                " WHERE type = 'started' GROUP BY job_id"
            )
        ).all()
    return {r[0]: r[1] for r in found}


def paragraphs(topic: str, count: int, size: int = 900) -> str:
    """Markdown of `count` distinct paragraphs of about `size` characters each."""
    words = [f"{topic}{i % 97} term{i % 13} value{i}" for i in range(size // 20)]
    return "\n\n".join(
        f"## Part {n} of {topic}\n\n" + " ".join(words) + f" end{n}." for n in range(count)
    )


def enqueue(queue: JobQueue, user_id: uuid.UUID, space_id: uuid.UUID, name: str, text: str) -> int:
    return queue.enqueue_file(
        user_id=user_id, space_id=space_id, source_id=name, data=text.encode(), origin="cli"
    )


def test_two_workers_share_the_queue_and_never_run_the_same_job(
    app_services: Callable[..., Services],
    make_user: Callable[..., Any],
    engine: Engine,
    workers: Callable[..., Workers],
) -> None:
    services = app_services()
    alice = make_user("alice")
    space = personal_access(services, alice.id)
    group = workers()
    group.start("w1")
    group.start("w2")
    # Both ready (each runs an ingest and a maintenance worker) before any job exists.
    wait_until(lambda: live_workers(engine) == 4, group, "two workers to start")

    queue = services.job_queue()
    files = {f"topic{n}.md": paragraphs(f"topic{n}", 12) for n in range(10)}
    ids = [enqueue(queue, alice.id, space.id, name, text) for name, text in files.items()]
    duplicate = "# Same file\n\nUploaded twice at once: the second upload must see the first."
    twice = [enqueue(queue, alice.id, space.id, "twice.md", duplicate) for _ in range(2)]
    broken = queue.enqueue_file(
        user_id=alice.id,
        space_id=space.id,
        source_id="broken.pdf",
        data=b"%PDF-1.7 this is not really a pdf",
        origin="cli",
    )
    every_id = [*ids, *twice, broken]
    wait_until(lambda: all(r.finished for r in rows(engine, every_id).values()), group, "every job")

    final = rows(engine, every_id)
    started = started_events(engine)
    assert {i: started.get(i) for i in every_id} == dict.fromkeys(every_id, 1)  # ran once each
    assert {final[i].status for i in ids} == {"done"}
    assert {final[i].worker for i in every_id} == {"w1/ingest", "w2/ingest"}  # both worked
    # The same file twice: one after the other (a lock per source), never both indexing it.
    assert sorted(final[i].phase for i in twice) == ["indexed", "unchanged"]
    # A corrupt file: failed at once, with the reason, not retried.
    assert final[broken].status == "failed" and final[broken].attempts == 1
    assert "broken.pdf" in (final[broken].error or "")
    with engine.begin() as conn:
        assert repo.queue_status(conn, job_id=broken) == "failed"
    counts = chunk_counts(engine, alice.id)
    assert counts == {
        **{files_name: final[i].result["chunks"] for files_name, i in zip(files, ids, strict=True)},
        "twice.md": 1,
    }


def test_a_worker_killed_mid_ingestion_leaves_nothing_half_indexed_and_another_finishes(
    app_services: Callable[..., Services],
    make_user: Callable[..., Any],
    engine: Engine,
    workers: Callable[..., Workers],
) -> None:
    services = app_services()
    alice, bob = make_user("alice"), make_user("bob")
    text = paragraphs("reactor", 400)
    group = workers()
    group.start("doomed")
    wait_until(lambda: live_workers(engine) == 2, group, "the first worker to start")
    queue = services.job_queue()
    job_id = enqueue(queue, alice.id, personal_access(services, alice.id).id, "big.md", text)

    def embedding_under_way() -> bool:
        row = rows(engine, [job_id])[job_id]
        return row.phase == "embedding" and (row.done or 0) >= 64

    wait_until(embedding_under_way, group, "the first batches to be embedded")
    group.kill("doomed")
    # The per-source transaction died with the worker: nothing of the file is visible.
    assert chunk_counts(engine, alice.id) == {}

    group.start("rescuer")
    wait_until(lambda: rows(engine, [job_id])[job_id].finished, group, "the job to finish")
    row = rows(engine, [job_id])[job_id]
    assert (row.status, row.worker, row.attempts) == ("done", "rescuer/ingest", 2)

    # A clean run of the same file (bob's space) makes exactly as many chunks.
    clean = enqueue(queue, bob.id, personal_access(services, bob.id).id, "big.md", text)
    wait_until(lambda: rows(engine, [clean])[clean].finished, group, "the clean run")
    assert rows(engine, [clean])[clean].attempts == 1
    assert chunk_counts(engine, alice.id) == chunk_counts(engine, bob.id)
    assert chunk_counts(engine, alice.id)["big.md"] == row.result["chunks"] > 300


def test_notion_syncs_run_on_the_schedule_through_the_same_job(
    app_services: Callable[..., Services],
    make_user: Callable[..., Any],
    engine: Engine,
    workers: Callable[..., Workers],
    tmp_path: Path,
) -> None:
    from ingest.notion.service import connect_notion

    demo = build_demo()
    carol = make_user("carol")
    with FakeNotion(demo.workspace) as fake:
        services = app_services(notion_base_url=fake.url, notion_requests_per_second=0)
        space = personal_access(services, carol.id)
        connect_notion(
            engine=engine,
            user_id=carol.id,
            space_id=space.id,
            token=demo.workspace.token,
            options=services.notion_options(),
        )
        settings = {
            "KB_NOTION_BASE_URL": fake.url,
            "KB_NOTION_REQUESTS_PER_SECOND": "0",
            "KB_SECRET_KEY": services.secret_key,
            "KB_NOTION_SYNC_INTERVAL_MINUTES": "0.05",  # every 3 s
        }
        group = workers(**settings)
        group.start("scheduler")

        def scheduled() -> list[JobRow]:
            with engine.begin() as conn:
                found = repo.list_jobs(conn, space_ids=[space.id], kind="notion_sync")
            return [r for r in found if r.origin == "schedule" and r.status == "done"]

        # Nobody asked: the first tick finds a connection never synced, a later one finds
        # the last sync older than the interval.
        wait_until(lambda: len(scheduled()) >= 2, group, "two scheduled syncs")
        first, second = sorted(scheduled(), key=lambda r: r.id)[:2]
        pages = len(demo.page_ids)
        assert first.requested_by is None and first.result["pages_new"] == pages
        assert second.result["pages_unchanged"] == pages and second.result["pages_new"] == 0

        status = subprocess.run(
            [sys.executable, "-m", "chat_app.cli", "notion", "status", "--user", "carol"],
            env=clean_env(group.db_url, **(group.settings | settings)),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
    assert status.returncode == 0, status.stderr
    text = " ".join(status.stdout.split())
    assert f"last run │ {first.created_at:%Y}" in text or "last run │ 20" in text, text
    # Either a time on the 3-second schedule, or the sync the schedule queued already.
    assert any(f"next run │ {s}" in text for s in ("20", "queued", "running now")), text
