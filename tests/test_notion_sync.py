"""Notion sync against the fake server and a real PostgreSQL: incremental, deletions, faults."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from db.models import NotionConnection, NotionSync
from db.scoped import make_read_engine, user_scope
from ingest.notion.errors import (
    NotionAuthError,
    NotionNotConnected,
    NotionSyncRunning,
    NotionTokenUnreadable,
)
from ingest.notion.report import SyncProgress
from ingest.notion.service import (
    connect_notion,
    disconnect_notion,
    notion_status,
    sync_notion,
)
from retrieval.retriever import Retriever
from tests.conftest import personal_space
from tests.fake_notion import FakeNotion, Fault
from tests.fakes import HashEmbeddings
from tests.notion_fixtures import Connected, Demo, connected, demo, fake, notion_options

__all__ = ["connected", "demo", "fake"]  # fixtures imported for pytest


async def _search(c: Connected, query: str) -> list[str]:
    engine = make_read_engine(c.engine.url.render_as_string(hide_password=False))
    try:
        retriever = Retriever(engine=engine, embeddings=c.embeddings)
        found = await retriever.search(query, user_id=c.user_id, k=20, mode="keyword")
    finally:
        await engine.dispose()
    return [p.source_id for p in found]


def _runs(c: Connected) -> list[dict[str, Any]]:
    table = NotionSync.__table__
    with user_scope(c.engine, c.user_id) as conn:
        rows = conn.execute(
            sa.select(table).where(table.c.space_id == c.space_id).order_by(table.c.id)
        )
        return [dict(r._mapping) for r in rows]


def test_first_sync_indexes_every_page_including_nested_children_and_database_rows(
    connected: Connected, demo: Demo
) -> None:
    report = connected.sync()

    assert report.status == "success", report.errors
    assert connected.source_ids() == demo.page_ids
    assert report.pages_new == len(demo.page_ids) and report.pages_failed == 0
    checklist = connected.chunks(demo.checklist)
    assert "- [x] Enable disk encryption" in checklist[0]["text"]
    assert checklist[0]["source_url"].endswith(demo.checklist.replace("-", ""))
    row = " ".join(c["text"] for c in connected.chunks(demo.rows[0]))
    assert "Status: Active" in row and "Owner: Grace" in row and "new ledger" in row
    handbook = connected.chunks(demo.handbook)
    metadata = next(c["metadata"] for c in handbook if "twenty-five" in c["text"])
    assert metadata["title"] == "Team handbook"
    assert metadata["headings"] == "Holidays"
    assert metadata["last_edited_time"].endswith(":00.000Z")
    assert metadata["source_url"] == handbook[0]["source_url"]
    runs = _runs(connected)
    assert [r["status"] for r in runs] == ["success"]
    assert runs[0]["pages_new"] == len(demo.page_ids) and runs[0]["finished_at"] is not None


def test_resync_without_edits_fetches_no_blocks_and_embeds_nothing(
    connected: Connected, demo: Demo
) -> None:
    connected.sync()
    connected.fake.reset_requests()
    calls_before = connected.embeddings.calls

    report = connected.sync()

    assert report.status == "success"
    assert report.pages_unchanged == len(demo.page_ids)
    assert report.pages_new == report.pages_updated == report.pages_removed == 0
    counts = connected.fake.counts()
    assert counts["blocks.children"] == 0 and counts["blocks"] == 0
    assert connected.embeddings.calls == calls_before
    assert connected.source_ids() == demo.page_ids


async def test_editing_one_page_reindexes_only_that_page(connected: Connected, demo: Demo) -> None:
    connected.sync()
    demo.workspace.edit_page(demo.onboarding, append="Zebras guard the server room.")
    connected.fake.reset_requests()
    texts_before = connected.embeddings.texts_embedded

    report = connected.sync()

    assert (report.pages_updated, report.pages_new) == (1, 0)
    assert report.pages_unchanged == len(demo.page_ids) - 1
    children_paths = [r.path for r in connected.fake.requests if r.kind == "blocks.children"]
    assert children_paths and all(demo.onboarding in p for p in children_paths)
    assert 0 < connected.embeddings.texts_embedded - texts_before <= 2
    assert demo.onboarding in await _search(connected, "zebras")


async def test_archived_and_deleted_pages_disappear_from_chunks_and_retrieval(
    connected: Connected, demo: Demo
) -> None:
    connected.sync()
    assert demo.faq in await _search(connected, "password portal")
    assert demo.rows[1] in await _search(connected, "notification service")
    demo.workspace.trash(demo.faq)
    demo.workspace.delete(demo.rows[1])

    report = connected.sync()

    assert report.pages_removed == 2 and report.status == "success"
    assert connected.source_ids() == demo.page_ids - {demo.faq, demo.rows[1]}
    assert connected.chunks(demo.faq) == [] and connected.chunks(demo.rows[1]) == []
    assert demo.faq not in await _search(connected, "password portal")
    assert demo.rows[1] not in await _search(connected, "notification service")


def test_trashing_a_parent_removes_its_hidden_descendants(connected: Connected, demo: Demo) -> None:
    connected.sync()
    demo.workspace.trash(demo.onboarding)

    report = connected.sync()

    assert report.pages_removed == 2
    assert connected.source_ids() == demo.page_ids - {demo.onboarding, demo.checklist}


def test_trashing_a_database_removes_its_rows(connected: Connected, demo: Demo) -> None:
    connected.sync()
    demo.workspace.trash(demo.database)

    report = connected.sync()

    assert report.pages_removed == len(demo.rows)
    assert connected.source_ids() == demo.page_ids - set(demo.rows)


def test_pages_that_cannot_be_checked_are_kept_not_deleted(
    connected: Connected, demo: Demo
) -> None:
    connected.sync()
    connected.fake.add_fault(
        Fault(status=500, kind="pages", path_contains=demo.onboarding, times=None)
    )

    report = connected.sync(max_retries=1)

    assert report.status == "partial" and report.pages_removed == 0
    assert connected.source_ids() == demo.page_ids  # unknown is not gone


def test_unshared_page_is_removed(connected: Connected, demo: Demo) -> None:
    connected.sync()
    demo.workspace.unshare(demo.faq)

    report = connected.sync()

    assert report.pages_removed == 1
    assert demo.faq not in connected.source_ids()


def test_rate_limit_storm_is_ridden_out(connected: Connected, demo: Demo) -> None:
    storm = connected.fake.add_fault(
        Fault(
            status=429,
            code="rate_limited",
            message="You have been rate limited.",
            retry_after="0",
            every=2,
            times=None,
        )
    )

    report = connected.sync()

    assert report.status == "success", report.errors
    assert storm.fired >= 10 and report.retries == storm.fired
    assert connected.source_ids() == demo.page_ids


def test_server_errors_and_timeouts_are_retried(connected: Connected, demo: Demo) -> None:
    connected.fake.add_fault(Fault(status=500, kind="blocks.children", times=3))
    connected.fake.add_fault(Fault(status=502, html=True, kind="search", times=1))
    connected.fake.add_fault(
        Fault(status=503, code="service_unavailable", kind="data_sources.query", times=1)
    )

    report = connected.sync()

    assert report.status == "success", report.errors
    assert report.retries == 5
    assert connected.source_ids() == demo.page_ids


def test_bad_token_is_refused_at_connect_and_nothing_is_stored(
    engine: Engine, make_user: Callable[..., Any], fake: FakeNotion
) -> None:
    user = make_user("bob")
    with pytest.raises(NotionAuthError, match="rejected the integration token"):
        connect_notion(
            engine=engine,
            user_id=user.id,
            space_id=personal_space(engine, user.id),
            token="ntn_wrong",
            options=notion_options(fake.url),
        )
    assert (
        notion_status(engine=engine, user_id=user.id, space_id=personal_space(engine, user.id))
        is None
    )
    with pytest.raises(NotionNotConnected, match="kb notion connect"):
        sync_notion(
            engine=engine,
            embeddings=HashEmbeddings(),
            user_id=user.id,
            space_id=personal_space(engine, user.id),
            options=notion_options(fake.url),
        )


def test_revoked_token_fails_the_run_clearly_and_changes_nothing(
    connected: Connected, demo: Demo
) -> None:
    connected.sync()
    chunks_before = connected.chunks()
    demo.workspace.token = "ntn_rotated"
    demo.workspace.edit_page(demo.faq, append="changed")

    with pytest.raises(NotionAuthError):
        connected.sync()

    assert connected.chunks() == chunks_before
    last = _runs(connected)[-1]
    assert last["status"] == "failed" and "401" in last["error"]


def test_failing_page_leaves_others_synced_marks_run_partial_and_rerun_converges(
    connected: Connected, demo: Demo
) -> None:
    connected.fake.add_fault(
        Fault(status=500, kind="blocks.children", path_contains=demo.rows[0], times=None)
    )

    first = connected.sync(max_retries=1)

    assert first.status == "partial" and first.pages_failed == 1
    assert "Apollo" in first.errors[0] and "500" in first.errors[0]
    assert connected.source_ids() == demo.page_ids - {demo.rows[0]}
    status = notion_status(
        engine=connected.engine, user_id=connected.user_id, space_id=connected.space_id
    )
    assert status is not None and status.pages_failed == 1
    assert status.last_sync is not None and status.last_sync.status == "partial"

    connected.fake.clear_faults()
    second = connected.sync()

    assert second.status == "success"
    assert (second.pages_new, second.pages_unchanged) == (1, len(demo.page_ids) - 1)
    assert connected.source_ids() == demo.page_ids


def test_interrupted_run_is_recorded_and_the_next_run_resumes(
    connected: Connected, demo: Demo
) -> None:
    class Stop(Exception):
        pass

    def stop_after_three(event: SyncProgress) -> None:
        if event.phase == "pages" and event.done == 3:
            raise Stop

    with pytest.raises(Stop):
        connected.sync(progress=stop_after_three)
    assert len(connected.source_ids()) == 3
    assert _runs(connected)[-1]["status"] == "failed"

    report = connected.sync()

    assert report.status == "success"
    assert (report.pages_unchanged, report.pages_new) == (3, len(demo.page_ids) - 3)
    assert connected.source_ids() == demo.page_ids


def test_a_second_sync_of_the_same_user_is_refused_while_one_runs(
    connected: Connected, demo: Demo
) -> None:
    refusals: list[str] = []

    def try_again(event: SyncProgress) -> None:
        if event.phase == "pages" and event.done == 1:
            with pytest.raises(NotionSyncRunning) as caught:
                connected.sync()
            refusals.append(str(caught.value))

    report = connected.sync(progress=try_again)

    assert report.status == "success" and len(refusals) == 1
    assert "already running" in refusals[0]
    assert [r["status"] for r in _runs(connected)] == ["success"]
    assert connected.sync().pages_unchanged == len(demo.page_ids)  # the lock was released


def test_progress_reports_each_page_with_a_growing_total(connected: Connected, demo: Demo) -> None:
    events: list[SyncProgress] = []

    connected.sync(progress=events.append)

    pages = [e for e in events if e.phase == "pages"]
    assert [e.done for e in pages] == list(range(1, len(demo.page_ids) + 1))
    assert all(e.total >= e.done for e in events)
    assert events[0].phase == "enumerating" and events[-1].phase == "done"
    assert {e.outcome for e in pages} == {"new"}


def test_token_is_stored_encrypted(connected: Connected, demo: Demo) -> None:
    table = NotionConnection.__table__
    with user_scope(connected.engine, connected.user_id) as conn:
        stored = conn.execute(sa.select(table.c.token_encrypted)).scalar_one()
    assert demo.workspace.token.encode() not in bytes(stored)
    assert demo.workspace.token[4:12].encode() not in bytes(stored)
    status = notion_status(
        engine=connected.engine, user_id=connected.user_id, space_id=connected.space_id
    )
    assert status is not None and demo.workspace.token not in repr(status)
    assert status.workspace_name == "Acme"


def test_a_changed_secret_key_asks_to_reconnect(connected: Connected) -> None:
    with pytest.raises(NotionTokenUnreadable) as caught:
        sync_notion(
            engine=connected.engine,
            embeddings=connected.embeddings,
            user_id=connected.user_id,
            space_id=connected.space_id,
            options=notion_options(connected.fake.url, secret_key="another key"),
        )

    assert caught.value.hint is not None and "kb notion connect" in caught.value.hint
    assert connected.fake.count("search") == 0


def test_disconnect_forgets_the_token_and_the_notion_chunks(connected: Connected) -> None:
    connected.sync()

    disconnect_notion(
        engine=connected.engine, user_id=connected.user_id, space_id=connected.space_id
    )

    assert connected.source_ids() == set()
    status = notion_status(
        engine=connected.engine, user_id=connected.user_id, space_id=connected.space_id
    )
    assert status is not None and not status.connected and status.pages_indexed == 0


def test_another_users_sync_sees_nothing_of_alices(
    connected: Connected, make_user: Callable[..., Any], fake: FakeNotion
) -> None:
    connected.sync()
    bob = make_user("bob")
    connect_notion(
        engine=connected.engine,
        user_id=bob.id,
        space_id=personal_space(connected.engine, bob.id),
        token=fake.workspace.token,
        options=notion_options(fake.url),
    )
    bobs = Connected(connected.engine, bob.id, fake, HashEmbeddings())

    report = bobs.sync()

    assert report.pages_new == len(connected.source_ids())  # bob indexes his own copy
    disconnect_notion(
        engine=connected.engine, user_id=bob.id, space_id=personal_space(connected.engine, bob.id)
    )
    assert bobs.source_ids() == set() and connected.source_ids()
