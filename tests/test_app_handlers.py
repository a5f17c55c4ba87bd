"""The chat app's handlers, called as Chainlit calls them, on the real database.

Only Chainlit's websocket session is mocked (see tests/app_fixtures.py); the chain,
ingestion, Notion service and data layer are the real ones, with fake embeddings.
"""

from __future__ import annotations

import tomllib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import chainlit.data as cl_data
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from chat_app.datalayer import build_data_layer, build_storage_engine
from chat_app.handlers.ask import answer_question
from chat_app.handlers.commands import COMMANDS, parse_command, send_chat_setup
from chat_app.handlers.history import memory_from_steps, restore_memory
from chat_app.handlers.notion import connect, notion_menu, resync
from chat_app.handlers.session import chat_options, get_history, remember_exchange
from chat_app.handlers.sources import forget_source, show_sources
from chat_app.handlers.upload import Upload, accepted_types, ingest_uploads
from chat_app.services import Services
from db.models import DocumentChunk
from db.scoped import user_scope
from tests.app_fixtures import (
    app_services,
    chainlit_context,
    emitted,
    final_messages,
    outputs,
    settle,
)
from tests.fake_notion import FakeNotion
from tests.notion_fixtures import build_demo

__all__ = ["app_services"]  # the fixture is used by name

ROOT = Path(__file__).resolve().parent.parent
REACTOR = (
    "# Zorblatt reactor\n\nThe Zorblatt reactor operates at exactly 4217 kelvin.\n\n"
    "## Cooling\n\nThe reactor is cooled by liquid xenon from the northern tank.\n"
)


def _upload(folder: Path, name: str, content: str | bytes) -> Upload:
    # Chainlit stores uploads under a random id without extension; the name is separate.
    path = folder / uuid.uuid4().hex
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return Upload(path=path, name=name, size=path.stat().st_size)


def _chunks(engine: Engine, user_id: uuid.UUID) -> dict[str, int]:
    table = DocumentChunk.__table__
    with user_scope(engine, user_id) as conn:
        rows = conn.execute(
            sa.select(table.c.source_id, sa.func.count())
            .where(table.c.user_id == user_id)
            .group_by(table.c.source_id)
        ).all()
    return {r[0]: r[1] for r in rows}


@pytest.fixture
def services(app_services: Callable[..., Services]) -> Services:
    return app_services()


@pytest.fixture
def data_layer(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Chainlit's SQLAlchemy data layer as the app configures it, installed for Chainlit."""
    layer = build_data_layer(db_url, storage_engine=build_storage_engine(db_url))
    monkeypatch.setattr(cl_data, "_data_layer", layer)
    monkeypatch.setattr(cl_data, "_data_layer_initialized", True)
    yield layer


# --- uploads -------------------------------------------------------------------------


async def test_uploaded_file_is_indexed_in_its_own_step(
    services: Services, make_user: Callable[..., Any], tmp_path: Path
) -> None:
    alice = make_user("alice")
    async with chainlit_context(alice) as session:
        outcomes = await ingest_uploads(
            [_upload(tmp_path, "reactor.md", REACTOR)], services=services, user_id=alice.id
        )
    assert [(o.name, o.status) for o in outcomes] == [("reactor.md", "indexed")]
    steps = [m for m in final_messages(session).values() if m["type"] == "tool"]
    assert [s["name"] for s in steps] == ["reactor.md"]
    assert steps[0]["defaultOpen"] is True
    assert steps[0]["output"] == f"Indexed {outcomes[0].chunks} chunks."
    assert not steps[0]["isError"]
    assert _chunks(services.engine, alice.id) == {"reactor.md": outcomes[0].chunks}
    assert any("Indexed **reactor.md**" in text for text in outputs(session))


async def test_reuploading_an_unchanged_file_is_reported_as_skipped(
    services: Services, make_user: Callable[..., Any], tmp_path: Path
) -> None:
    alice = make_user("alice")
    async with chainlit_context(alice):
        await ingest_uploads(
            [_upload(tmp_path, "reactor.md", REACTOR)], services=services, user_id=alice.id
        )
    embedded_before = services.embeddings.texts_embedded  # type: ignore[attr-defined]
    async with chainlit_context(alice) as session:
        outcomes = await ingest_uploads(
            [_upload(tmp_path, "reactor.md", REACTOR)], services=services, user_id=alice.id
        )
    assert outcomes[0].status == "unchanged"
    assert services.embeddings.texts_embedded == embedded_before  # type: ignore[attr-defined]
    assert any(o.startswith("Unchanged since the last upload, skipped") for o in outputs(session))


async def test_a_bad_file_fails_its_step_and_the_others_are_still_indexed(
    services: Services, make_user: Callable[..., Any], tmp_path: Path
) -> None:
    alice = make_user("alice")
    async with chainlit_context(alice) as session:
        outcomes = await ingest_uploads(
            [
                _upload(tmp_path, "broken.pdf", b"%PDF-1.7 this is not really a pdf"),
                _upload(tmp_path, "reactor.md", REACTOR),
            ],
            services=services,
            user_id=alice.id,
        )
    assert [o.status for o in outcomes] == ["error", "indexed"]
    failed = next(m for m in final_messages(session).values() if m["name"] == "broken.pdf")
    assert failed["isError"] and "broken.pdf" in failed["output"]
    assert set(_chunks(services.engine, alice.id)) == {"reactor.md"}
    assert any("Could not index **broken.pdf**" in text for text in outputs(session))


async def test_files_over_the_size_limit_are_refused_without_reading_them(
    app_services: Callable[..., Services], make_user: Callable[..., Any], tmp_path: Path
) -> None:
    services = app_services(max_file_mb=0.0001)  # ~100 bytes
    alice = make_user("alice")
    async with chainlit_context(alice) as session:
        outcomes = await ingest_uploads(
            [_upload(tmp_path, "reactor.md", REACTOR)], services=services, user_id=alice.id
        )
    assert outcomes[0].status == "error"
    assert "the limit is 0.0001 MB" in outcomes[0].detail
    assert _chunks(services.engine, alice.id) == {}
    assert services.embeddings.calls == 0  # type: ignore[attr-defined]
    assert any("Could not index **reactor.md**" in text for text in outputs(session))


async def test_files_beyond_the_per_upload_limit_are_named_and_not_processed(
    app_services: Callable[..., Services], make_user: Callable[..., Any], tmp_path: Path
) -> None:
    services = app_services(max_files_per_upload=1)
    alice = make_user("alice")
    async with chainlit_context(alice) as session:
        outcomes = await ingest_uploads(
            [_upload(tmp_path, "one.md", REACTOR), _upload(tmp_path, "two.md", "# Two\n\nMore.")],
            services=services,
            user_id=alice.id,
        )
    assert [o.name for o in outcomes] == ["one.md"]
    assert set(_chunks(services.engine, alice.id)) == {"one.md"}
    assert any("not processed: **two.md**" in text for text in outputs(session))


async def test_upload_command_asks_for_files_with_the_configured_limits(
    app_services: Callable[..., Services], make_user: Callable[..., Any], tmp_path: Path
) -> None:
    from chat_app.handlers.upload import ask_and_ingest

    services = app_services(max_file_mb=5, max_files_per_upload=3)
    alice = make_user("alice")
    upload = _upload(tmp_path, "reactor.md", REACTOR)
    stored = {
        "id": "f1",
        "name": "reactor.md",
        "path": upload.path,
        "size": upload.size,
        "type": "text/markdown",
    }
    async with chainlit_context(alice, replies=[[{"id": "f1"}]]) as session:
        session.files = {"f1": stored}
        outcomes = await ask_and_ingest(services=services, user_id=alice.id)
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


# --- answers -------------------------------------------------------------------------


async def test_answer_streams_and_cites_sources_as_side_elements_named_in_the_text(
    services: Services, make_user: Callable[..., Any], tmp_path: Path
) -> None:
    alice = make_user("alice")
    async with chainlit_context(alice):
        await ingest_uploads(
            [_upload(tmp_path, "reactor.md", REACTOR)], services=services, user_id=alice.id
        )
    async with chainlit_context(alice) as session:
        msg = await answer_question(
            "At what temperature does the Zorblatt reactor operate?",
            services=services,
            user_id=alice.id,
        )
    assert emitted(session, "stream_start"), "the answer streams"
    assert "4217" in msg.content and "[1]" in msg.content
    assert "**Sources:** [1] " in msg.content
    elements = emitted(session, "element")
    assert elements and all(e["display"] == "side" and e["forId"] == msg.id for e in elements)
    names = [e["name"] for e in elements]
    assert len(set(names)) == len(names) and all(name in msg.content for name in names)
    first = msg.elements[0]
    assert "reactor.md" in first.content and "4217" in first.content  # type: ignore[operator]
    assert msg.metadata == {"kind": "answer"}


async def test_a_user_never_gets_answers_from_another_users_documents(
    services: Services, make_user: Callable[..., Any], tmp_path: Path
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    async with chainlit_context(alice):
        await ingest_uploads(
            [_upload(tmp_path, "reactor.md", REACTOR)], services=services, user_id=alice.id
        )
    async with chainlit_context(bob) as session:
        msg = await answer_question(
            "At what temperature does the Zorblatt reactor operate?",
            services=services,
            user_id=bob.id,
        )
    assert "4217" not in msg.content
    assert "don't know" in msg.content
    assert emitted(session, "element") == []


async def test_uploaded_attachment_becomes_the_sources_file_link(
    services: Services, data_layer: Any, make_user: Callable[..., Any], tmp_path: Path
) -> None:
    """A chat attachment is stored in PostgreSQL; the source panel links to it."""
    import chainlit as cl

    alice = make_user("alice")
    thread_id = str(uuid.uuid4())
    upload = _upload(tmp_path, "reactor.md", REACTOR)
    async with chainlit_context(alice, thread_id=thread_id):
        await data_layer.update_thread(thread_id, user_id=str(alice.id))
        message = cl.Message(
            content="my file",
            type="user_message",
            elements=[cl.File(name="reactor.md", path=str(upload.path))],
        )
        await message.send()
        await settle()
        await ingest_uploads([upload], services=services, user_id=alice.id)
    async with chainlit_context(alice, thread_id=thread_id):
        msg = await answer_question(
            "Zorblatt reactor temperature?", services=services, user_id=alice.id
        )
    assert "[Open the file](/kb/files/" in msg.elements[0].content  # type: ignore[operator]


async def test_chat_settings_choose_mode_and_top_k(
    services: Services, make_user: Callable[..., Any]
) -> None:
    alice = make_user("alice")
    async with chainlit_context(alice) as session:
        assert chat_options(services.settings).mode == services.settings.retrieval_mode
        session.chat_settings = {"mode": "keyword", "top_k": 3}
        assert chat_options(services.settings).mode == "keyword"
        assert chat_options(services.settings).k == 3
        session.chat_settings = {"mode": "nonsense", "top_k": 999}
        options = chat_options(services.settings)
        assert (options.mode, options.k) == (services.settings.retrieval_mode, 20)


async def test_new_chat_gets_commands_and_settings(
    services: Services, make_user: Callable[..., Any]
) -> None:
    async with chainlit_context(make_user("alice")) as session:
        await send_chat_setup(services.settings)
    assert [c["id"] for c in emitted(session, "set_commands")[0]] == [c["id"] for c in COMMANDS]
    widgets = {w["id"]: w for w in emitted(session, "chat_settings")[0]}
    assert set(widgets) == {"mode", "top_k"}


@pytest.mark.parametrize(
    ("command", "content", "expected"),
    [
        ("forget", "report.pdf", ("forget", "report.pdf")),
        (None, "/forget  report.pdf ", ("forget", "report.pdf")),
        (None, "/SOURCES", ("sources", "")),
        (None, "/unknown thing", (None, "/unknown thing")),
        (None, "What is 4217?", (None, "What is 4217?")),
    ],
)
def test_commands_are_picked_or_typed(
    command: str | None, content: str, expected: tuple[str | None, str]
) -> None:
    parsed = parse_command(command, content)
    assert (parsed.name, parsed.argument) == expected


# --- history -------------------------------------------------------------------------


async def test_resumed_chat_gets_its_memory_back_from_the_stored_steps(
    services: Services, data_layer: Any, make_user: Callable[..., Any], tmp_path: Path
) -> None:
    import chainlit as cl

    alice = make_user("alice")
    thread_id = str(uuid.uuid4())
    async with chainlit_context(alice):
        await ingest_uploads(
            [_upload(tmp_path, "reactor.md", REACTOR)], services=services, user_id=alice.id
        )
    async with chainlit_context(alice, thread_id=thread_id):
        await data_layer.update_thread(thread_id, user_id=str(alice.id))
        question = "At what temperature does the Zorblatt reactor operate?"
        await cl.Message(content=question, type="user_message").send()
        await cl.Message(content="/sources", type="user_message", command="sources").send()
        answer = await answer_question(question, services=services, user_id=alice.id)
    thread = await data_layer.get_thread(thread_id)
    assert thread is not None
    async with chainlit_context(alice, thread_id=thread_id):
        memory = restore_memory(thread)
        history = get_history()
    assert memory == [("human", question), ("ai", answer.content.split("\n\n**Sources:**")[0])]
    assert [m.type for m in history] == ["human", "ai"]


def test_memory_skips_commands_tool_steps_and_unanswered_questions() -> None:
    steps: list[dict[str, Any]] = [
        {"createdAt": "1", "type": "user_message", "output": "/sources", "command": "sources"},
        {
            "createdAt": "2",
            "type": "assistant_message",
            "output": "Your sources",
            "metadata": {"kind": "sources"},
        },
        {"createdAt": "3", "type": "user_message", "output": "first?"},
        {"createdAt": "4", "type": "tool", "output": "Indexed", "parentId": "x"},
        {"createdAt": "5", "type": "user_message", "output": "second?"},
        {
            "createdAt": "6",
            "type": "assistant_message",
            "output": "two [1]\n\n**Sources:** [1] a",
            "metadata": '{"kind": "answer"}',
        },
        {"createdAt": "7", "type": "user_message", "output": "stopped?"},
    ]
    assert memory_from_steps(steps) == [("human", "second?"), ("ai", "two [1]")]


async def test_memory_is_kept_as_json_and_capped(make_user: Callable[..., Any]) -> None:
    async with chainlit_context(make_user("alice")):
        for i in range(15):
            remember_exchange(f"q{i}", f"a{i}")
        history = get_history()
    assert len(history) == 20 and history[-1].content == "a14"


async def test_feedback_thumbs_are_stored(
    data_layer: Any, make_user: Callable[..., Any], engine: Engine
) -> None:
    import chainlit as cl
    from chainlit.types import Feedback

    alice = make_user("alice")
    thread_id = str(uuid.uuid4())
    async with chainlit_context(alice, thread_id=thread_id):
        await data_layer.update_thread(thread_id, user_id=str(alice.id))
        msg = await cl.Message(content="an answer").send()
        await settle()
        await data_layer.upsert_feedback(
            Feedback(forId=msg.id, value=1, comment="useful", threadId=thread_id)
        )
    with engine.connect() as conn:
        row = conn.execute(
            sa.text('SELECT value, comment FROM feedbacks WHERE "forId" = :id'), {"id": msg.id}
        ).one()
    assert (row.value, row.comment) == (1, "useful")


# --- sources -------------------------------------------------------------------------


async def test_sources_lists_and_forget_removes_one(
    services: Services, make_user: Callable[..., Any], tmp_path: Path
) -> None:
    alice = make_user("alice")
    async with chainlit_context(alice):
        await ingest_uploads(
            [_upload(tmp_path, "reactor.md", REACTOR), _upload(tmp_path, "notes.txt", "Notes.")],
            services=services,
            user_id=alice.id,
        )
    async with chainlit_context(alice):
        listing = await show_sources(services=services, user_id=alice.id)
        partial = await forget_source("reac", services=services, user_id=alice.id)
        missing = await forget_source("nothing-like-it", services=services, user_id=alice.id)
        forgotten = await forget_source("reactor.md", services=services, user_id=alice.id)
    assert "| reactor.md" in listing.content and "| notes.txt" in listing.content
    assert "Did you mean: `/forget reactor.md`?" in partial.content
    assert "No source matches" in missing.content
    assert forgotten.content.startswith("Forgot **reactor.md**")
    assert set(_chunks(services.engine, alice.id)) == {"notes.txt"}


async def test_forget_cannot_touch_another_users_source(
    services: Services, make_user: Callable[..., Any], tmp_path: Path
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    async with chainlit_context(alice):
        await ingest_uploads(
            [_upload(tmp_path, "reactor.md", REACTOR)], services=services, user_id=alice.id
        )
    async with chainlit_context(bob):
        reply = await forget_source("reactor.md", services=services, user_id=bob.id)
        empty = await show_sources(services=services, user_id=bob.id)
    assert "No source matches" in reply.content
    assert "no indexed sources yet" in empty.content
    assert set(_chunks(services.engine, alice.id)) == {"reactor.md"}


# --- Notion --------------------------------------------------------------------------


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
            menu = await notion_menu(services=services, user_id=alice.id)
            connected = await connect(services=services, user_id=alice.id)
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
            token=demo.workspace.token,
            secret_key=services.secret_key,
            base_url=fake.url,
        )
        async with chainlit_context(alice) as session:
            first = await resync(services=services, user_id=alice.id)
            second = await resync(services=services, user_id=alice.id)
            status = await notion_menu(services=services, user_id=alice.id)
    pages = len(demo.page_ids)
    assert f"**{pages}** new" in first.content and "**0** errors" in first.content
    assert f"**{pages}** unchanged" in second.content and "**0** new" in second.content
    progress = [m["output"] for m in emitted(session, "update_message") if m["type"] == "tool"]
    assert any(p.startswith("Page ") for p in progress)
    assert f"Pages indexed: **{pages}**" in status.content and "Last sync:" in status.content


async def test_notion_resync_without_a_connection_says_what_to_do(
    services: Services, make_user: Callable[..., Any]
) -> None:
    alice = make_user("alice")
    async with chainlit_context(alice):
        msg = await resync(services=services, user_id=alice.id)
    assert msg.content.startswith("**Notion sync failed:**")
    assert "not connected Notion" in msg.content


async def test_a_chat_begun_with_a_command_is_named_after_its_first_question(
    services: Services, make_user: Callable[..., Any], engine: Engine
) -> None:
    from chat_app.handlers.history import name_thread_after_question

    alice, bob = make_user("alice"), make_user("bob")
    threads = {name: str(uuid.uuid4()) for name in ("command", "question", "bobs")}
    with engine.begin() as conn:
        for key, name, owner in (
            ("command", "/upload", alice),
            ("question", "Hello?", alice),
            ("bobs", "/sources", bob),
        ):
            conn.execute(
                sa.text('INSERT INTO threads (id, name, "userId") VALUES (:t, :n, :u)'),
                {"t": threads[key], "n": name, "u": owner.id},
            )
    for key in threads:
        async with chainlit_context(alice, thread_id=threads[key]):
            await name_thread_after_question(engine, alice.id, "  What is  the reactor's heat? ")
            await name_thread_after_question(engine, alice.id, "second question")
    with engine.connect() as conn:
        names = dict(conn.execute(sa.text("SELECT id::text, name FROM threads")).all())
    assert names[threads["command"]] == "What is the reactor's heat?"
    assert names[threads["question"]] == "Hello?"
    assert names[threads["bobs"]] == "/sources"  # not alice's chat
