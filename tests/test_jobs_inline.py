"""Jobs run by a worker inside the test process: enqueue, run, outcome on the job row."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chat_app.jobs.runner import work_until_idle
from chat_app.services import Services
from tests.app_fixtures import REACTOR, app_services, chunk_counts, personal_access, services

__all__ = ["app_services", "services"]


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
    assert queue.get(job_id).status == "queued"
    await work_until_idle(services)
    row = queue.get(job_id)
    assert row.status == "done", row
    assert row.message == f"Indexed {row.result['chunks']} chunks."
    assert chunk_counts(services.engine, alice.id) == {"reactor.md": row.result["chunks"]}
