"""Notion in the chat: connect (the token never stays in the chat), re-sync, status.

Runs against the fake Notion server of tests/fake_notion on 127.0.0.1.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from chat_app.handlers.notion import connect, notion_menu, resync
from chat_app.services import Services
from tests.app_fixtures import app_services, chainlit_context, emitted, personal_access, services
from tests.fake_notion import FakeNotion, Fault
from tests.job_fixtures import finish
from tests.notion_fixtures import build_demo

__all__ = ["app_services", "services"]  # fixtures, used by name


async def test_notion_connect_stores_the_token_and_removes_the_reply_that_carried_it(
    app_services: Callable[..., Services], make_user: Callable[..., Any], engine: Engine
) -> None:
    demo = build_demo()
    alice = make_user("alice")
    reply_id = str(uuid.uuid4())
    with FakeNotion(demo.workspace) as fake:
        services = app_services(notion_base_url=fake.url)
        thread_id = str(uuid.uuid4())
        with engine.begin() as conn:  # the reply as Chainlit stores it
            conn.execute(
                sa.text('INSERT INTO threads (id, "userId") VALUES (:t, :u)'),
                {"t": thread_id, "u": alice.id},
            )
            conn.execute(
                sa.text(
                    'INSERT INTO steps (id, name, type, "threadId", streaming, '
                    "output) VALUES (:id, :n, :ty, :t, false, :o)"
                ),
                {
                    "id": reply_id,
                    "n": "alice",
                    "ty": "user_message",
                    "t": thread_id,
                    "o": demo.workspace.token,
                },
            )
        token_reply = {
            "id": reply_id,
            "output": f"  {demo.workspace.token}\n",
            "type": "user_message",
            "createdAt": "2026-01-01T00:00:00Z",
            "name": "alice",
        }
        async with chainlit_context(alice, thread_id=thread_id, replies=[token_reply]) as session:
            menu = await notion_menu(
                services=services, user_id=alice.id, space=personal_access(services, alice.id)
            )
            connected = await connect(
                services=services, user_id=alice.id, space=personal_access(services, alice.id)
            )
    assert "not connected" in menu.content
    assert [a.name for a in menu.actions] == ["notion_connect"]
    assert "**connected** to *Acme*" in connected.content
    assert "notion_sync" in [a.name for a in connected.actions]
    assert [d["id"] for d in emitted(session, "delete_message")] == [reply_id]
    with engine.connect() as conn:
        assert (
            conn.execute(
                sa.text("SELECT count(*) FROM steps WHERE id = :id"), {"id": reply_id}
            ).scalar()
            == 0
        )
    shown = " ".join(str(p) for c in session.emit.call_args_list for p in c.args)
    assert demo.workspace.token not in shown


async def test_notion_resync_shows_progress_and_the_summary(
    app_services: Callable[..., Services], make_user: Callable[..., Any]
) -> None:
    from ingest.notion.service import connect_notion

    demo = build_demo()
    alice = make_user("alice")
    with FakeNotion(demo.workspace) as fake:
        services = app_services(notion_base_url=fake.url, notion_requests_per_second=0)
        connect_notion(
            engine=services.engine,
            user_id=alice.id,
            space_id=personal_access(services, alice.id).id,
            token=demo.workspace.token,
            options=services.notion_options(),
        )
        # A slow Notion: each page's blocks take a while, so the step shows pages pass by.
        fake.add_fault(Fault(kind="blocks.children", delay=0.3, times=None))
        async with chainlit_context(alice) as session:
            first = await finish(
                await resync(
                    services=services, user_id=alice.id, space=personal_access(services, alice.id)
                ),
                services,
            )
            second = await finish(
                await resync(
                    services=services, user_id=alice.id, space=personal_access(services, alice.id)
                ),
                services,
            )
            status = await notion_menu(
                services=services, user_id=alice.id, space=personal_access(services, alice.id)
            )
    pages = len(demo.page_ids)
    assert f"**{pages}** new" in first.content and "**0** errors" in first.content
    assert f"**{pages}** unchanged" in second.content and "**0** new" in second.content
    progress = [m["output"] for m in emitted(session, "update_message") if m["type"] == "tool"]
    assert any(p.startswith("Page ") for p in progress)
    assert f"Pages indexed: **{pages}**" in status.content and "Last sync:" in status.content
    assert "Last run: " in status.content and "Next run: " in status.content


async def test_notion_resync_without_a_connection_says_what_to_do(
    services: Services, make_user: Callable[..., Any]
) -> None:
    alice = make_user("alice")
    async with chainlit_context(alice):
        started = await resync(
            services=services, user_id=alice.id, space=personal_access(services, alice.id)
        )
        msg = await started.final()
    assert msg.content.startswith("**Notion sync failed:**")
    assert "not connected Notion" in msg.content
