"""Uploads in the chat: a visible step per file, limits, bad files, the drop zone.

Only Chainlit's websocket session is mocked (tests/app_fixtures.py); the job queue,
ingestion and the database are real (a worker runs in the test process), embeddings
are fake.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chat_app.handlers.jobs import show_jobs
from chat_app.handlers.upload import accepted_types
from chat_app.services import Services
from db import jobs as repo
from tests.app_fixtures import (
    REACTOR,
    app_services,
    chainlit_context,
    chunk_counts,
    final_messages,
    make_upload,
    outputs,
    personal_access,
    services,
    user_spaces,
)
from tests.job_fixtures import index_uploads, run_jobs, upload_as

__all__ = ["app_services", "services"]  # fixtures, used by name

ROOT = Path(__file__).resolve().parent.parent


async def test_uploaded_file_is_indexed_in_its_own_step(
    services: Services, make_user: Callable[..., Any], tmp_path: Path
) -> None:
    alice = make_user("alice")
    async with chainlit_context(alice) as session:
        outcomes = await index_uploads(
            [make_upload(tmp_path, "reactor.md", REACTOR)],
            services=services,
            user_id=alice.id,
        )
    assert [(o.name, o.status) for o in outcomes] == [("reactor.md", "indexed")]
    steps = [m for m in final_messages(session).values() if m["type"] == "tool"]
    assert [s["name"] for s in steps] == ["reactor.md"]
    assert steps[0]["defaultOpen"] is True
    assert steps[0]["output"] == f"Indexed {outcomes[0].chunks} chunks."
    assert not steps[0]["isError"]
    assert chunk_counts(services.engine, alice.id) == {"reactor.md": outcomes[0].chunks}
    assert any("Indexed **reactor.md**" in text for text in outputs(session)), outputs(session)


async def test_reuploading_an_unchanged_file_is_reported_as_skipped(
    services: Services, make_user: Callable[..., Any], tmp_path: Path
) -> None:
    alice = make_user("alice")
    await upload_as(alice, services, tmp_path)
    embedded_before = services.embeddings.texts_embedded  # type: ignore[attr-defined]
    async with chainlit_context(alice) as session:
        outcomes = await index_uploads(
            [make_upload(tmp_path, "reactor.md", REACTOR)],
            services=services,
            user_id=alice.id,
        )
    assert outcomes[0].status == "unchanged"
    assert services.embeddings.texts_embedded == embedded_before  # type: ignore[attr-defined]
    assert any(o.startswith("Unchanged since the last upload, skipped") for o in outputs(session))


async def test_a_bad_file_fails_its_step_and_the_others_are_still_indexed(
    services: Services, make_user: Callable[..., Any], tmp_path: Path
) -> None:
    alice = make_user("alice")
    async with chainlit_context(alice) as session:
        outcomes = await index_uploads(
            [
                make_upload(tmp_path, "broken.pdf", b"%PDF-1.7 this is not really a pdf"),
                make_upload(tmp_path, "reactor.md", REACTOR),
            ],
            services=services,
            user_id=alice.id,
        )
    assert [o.status for o in outcomes] == ["error", "indexed"]
    failed = next(m for m in final_messages(session).values() if m["name"] == "broken.pdf")
    assert failed["isError"] and "broken.pdf" in failed["output"]
    assert set(chunk_counts(services.engine, alice.id)) == {"reactor.md"}
    assert any("Could not index **broken.pdf**" in text for text in outputs(session))


async def test_files_over_the_size_limit_are_refused_without_reading_them(
    app_services: Callable[..., Services], make_user: Callable[..., Any], tmp_path: Path
) -> None:
    services = app_services(max_file_mb=0.0001)  # ~100 bytes
    alice = make_user("alice")
    async with chainlit_context(alice) as session:
        outcomes = await index_uploads(
            [make_upload(tmp_path, "reactor.md", REACTOR)],
            services=services,
            user_id=alice.id,
        )
    assert outcomes[0].status == "error"
    assert "the limit is 0.0001 MB" in outcomes[0].detail
    assert chunk_counts(services.engine, alice.id) == {}
    assert services.embeddings.calls == 0  # type: ignore[attr-defined]
    assert any("Could not index **reactor.md**" in text for text in outputs(session))


async def test_files_beyond_the_per_upload_limit_are_named_and_not_processed(
    app_services: Callable[..., Services], make_user: Callable[..., Any], tmp_path: Path
) -> None:
    services = app_services(max_files_per_upload=1)
    alice = make_user("alice")
    async with chainlit_context(alice) as session:
        outcomes = await index_uploads(
            [
                make_upload(tmp_path, "one.md", REACTOR),
                make_upload(tmp_path, "two.md", "# Two\n\nMore."),
            ],
            services=services,
            user_id=alice.id,
        )
    assert [o.name for o in outcomes] == ["one.md"]
    assert set(chunk_counts(services.engine, alice.id)) == {"one.md"}
    assert any("not processed: **two.md**" in text for text in outputs(session))


async def test_upload_command_asks_for_files_with_the_configured_limits(
    app_services: Callable[..., Services], make_user: Callable[..., Any], tmp_path: Path
) -> None:
    from chat_app.handlers.upload import ask_and_ingest

    services = app_services(max_file_mb=5, max_files_per_upload=3)
    alice = make_user("alice")
    upload = make_upload(tmp_path, "reactor.md", REACTOR)
    stored = {
        "id": "f1",
        "name": "reactor.md",
        "path": upload.path,
        "size": upload.size,
        "type": "text/markdown",
    }
    async with chainlit_context(alice, replies=[[{"id": "f1"}]]) as session:
        session.files = {"f1": stored}
        batch = await ask_and_ingest(
            services=services, user_id=alice.id, space=personal_access(services, alice.id)
        )
        await run_jobs(services)
        outcomes = await batch.finished()
    spec = session.emit_call.call_args.args[1]["spec"]
    assert (spec["max_size_mb"], spec["max_files"]) == (5, 3)
    assert spec["accept"] == accepted_types()
    assert [o.status for o in outcomes] == ["indexed"]


def test_the_drop_zone_accepts_exactly_what_the_loaders_read() -> None:
    from ingest.loaders import SUPPORTED_EXTENSIONS

    config = tomllib.loads((ROOT / ".chainlit" / "config.toml").read_text())
    accept = config["features"]["spontaneous_file_upload"]["accept"]
    assert accept == accepted_types()
    assert set(accept["application/octet-stream"]) == {
        "." + e.lstrip(".") for e in SUPPORTED_EXTENSIONS
    }
    assert config["features"]["favorites"] is False


async def test_a_corrupt_upload_is_a_failed_job_not_retried_and_jobs_lists_it_to_its_owner(
    services: Services, make_user: Callable[..., Any], tmp_path: Path
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    async with chainlit_context(alice):
        outcomes = await index_uploads(
            [make_upload(tmp_path, "broken.pdf", b"%PDF-1.7 this is not really a pdf")],
            services=services,
            user_id=alice.id,
        )
    assert [o.status for o in outcomes] == ["error"]
    with services.engine.begin() as conn:
        (row,) = repo.list_jobs(conn, space_ids=None, limit=10)
    # Bad input fails at once with its reason; only transient trouble is retried.
    assert (row.status, row.attempts) == ("failed", 1)
    assert row.message and "broken.pdf" in row.message

    async with chainlit_context(alice) as session:
        await show_jobs(services=services, user_id=alice.id, spaces=user_spaces(services, alice.id))
    (listing,) = outputs(session)
    assert "broken.pdf" in listing and "failed" in listing.lower()
    assert listing.lower().count("failed") == 1  # the status is said once

    async with chainlit_context(bob) as session:
        await show_jobs(services=services, user_id=bob.id, spaces=user_spaces(services, bob.id))
    (listing,) = outputs(session)
    assert "broken.pdf" not in listing and "No jobs yet" in listing
