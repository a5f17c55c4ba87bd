"""The chat app's handlers, called as Chainlit calls them, on the real database.

Only Chainlit's websocket session is mocked (see tests/app_fixtures.py); the chain,
ingestion, Notion service and data layer are the real ones, with fake embeddings.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
import sqlalchemy as sa
from chainlit.step import StepDict
from sqlalchemy.engine import Engine

from chat_app.handlers.ask import answer_question
from chat_app.handlers.commands import COMMANDS, parse_command, send_chat_setup, starters
from chat_app.handlers.history import memory_from_steps, restore_memory
from chat_app.handlers.session import chat_options, get_history, remember_exchange
from chat_app.handlers.sources import forget_source, show_sources
from chat_app.handlers.spaces import user_spaces
from chat_app.services import Services
from tests.app_fixtures import (
    REACTOR,
    app_services,
    chainlit_context,
    chunk_counts,
    data_layer,
    emitted,
    make_upload,
    services,
    settle,
)
from tests.format_factory import write_pptx
from tests.job_fixtures import finish, index_uploads, upload_as

__all__ = ["app_services", "data_layer", "services"]  # fixtures, used by name


# --- answers -------------------------------------------------------------------------


async def test_answer_streams_and_cites_sources_as_side_elements_named_in_the_text(
    services: Services, make_user: Callable[..., Any], tmp_path: Path
) -> None:
    alice = make_user("alice")
    await upload_as(alice, services, tmp_path)
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


async def test_citations_name_the_slide_a_passage_comes_from(
    services: Services, make_user: Callable[..., Any], tmp_path: Path
) -> None:
    alice = make_user("alice")
    deck = write_pptx(tmp_path / "review.pptx").read_bytes()
    async with chainlit_context(alice):
        outcomes = await index_uploads(
            [make_upload(tmp_path, "review.pptx", deck)],
            services=services,
            user_id=alice.id,
        )
    assert [o.status for o in outcomes] == ["indexed"]

    async with chainlit_context(alice):
        msg = await answer_question(
            "What was the auditor's remark about invoices?", services=services, user_id=alice.id
        )

    footer = msg.content.split("**Sources:** ", 1)[1]
    assert "Quarterly review, slide 2" in footer
    assert ", p. " not in footer
    panels = [str(e.content) for e in msg.elements]
    assert any(
        panel.startswith("### Quarterly review\n") and "slide 2" in panel.split("---")[0]
        for panel in panels
    )


async def test_a_user_never_gets_answers_from_another_users_documents(
    services: Services, make_user: Callable[..., Any], tmp_path: Path
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    await upload_as(alice, services, tmp_path)
    async with chainlit_context(bob) as session:
        msg = await answer_question(
            "At what temperature does the Zorblatt reactor operate?",
            services=services,
            user_id=bob.id,
        )
    assert "4217" not in msg.content
    assert "don't know" in msg.content
    assert emitted(session, "element") == []


async def test_an_uploaded_file_is_linked_from_its_citation(
    services: Services, data_layer: Any, make_user: Callable[..., Any], tmp_path: Path
) -> None:
    """An indexed upload is kept in its space; the source panel links to it."""
    import chainlit as cl

    alice = make_user("alice")
    thread_id = str(uuid.uuid4())
    upload = make_upload(tmp_path, "reactor.md", REACTOR)
    async with chainlit_context(alice, thread_id=thread_id):
        await data_layer.update_thread(thread_id, user_id=str(alice.id))
        message = cl.Message(
            content="my file",
            type="user_message",
            elements=[cl.File(name="reactor.md", path=str(upload.path))],
        )
        await message.send()
        await settle()
        await index_uploads([upload], services=services, user_id=alice.id)
    async with chainlit_context(alice, thread_id=thread_id):
        msg = await answer_question(
            "Zorblatt reactor temperature?", services=services, user_id=alice.id
        )
    # A Markdown file opens at the quoted words (a text fragment).
    panel = str(msg.elements[0].content)
    assert "[Open the file at the quote](/kb/sources/" in panel


async def test_chat_settings_choose_mode_top_k_and_spaces(
    services: Services, make_user: Callable[..., Any]
) -> None:
    alice = make_user("alice")
    mine = user_spaces(services, alice.id)
    async with chainlit_context(alice) as session:
        defaults = chat_options(services.settings, mine)
        assert defaults.mode == services.settings.retrieval_mode
        assert defaults.spaces is None and defaults.upload_space.kind == "personal"
        session.chat_settings = {"mode": "keyword", "top_k": 3}
        assert chat_options(services.settings, mine).mode == "keyword"
        assert chat_options(services.settings, mine).k == 3
        session.chat_settings = {
            "mode": "nonsense",
            "top_k": 999,
            "search_spaces": [str(mine[0].id), "not-a-space-of-hers"],
            "upload_space": "Somewhere she cannot write",
        }
        options = chat_options(services.settings, mine)
        assert (options.mode, options.k) == (services.settings.retrieval_mode, 20)
        assert options.spaces == [mine[0].id]
        assert options.upload_space.kind == "personal"


async def test_new_chat_gets_commands_and_settings(
    services: Services, make_user: Callable[..., Any]
) -> None:
    alice = make_user("alice")
    async with chainlit_context(alice) as session:
        await send_chat_setup(services.settings, user_spaces(services, alice.id))
    assert [c["id"] for c in emitted(session, "set_commands")[0]] == [c["id"] for c in COMMANDS]
    widgets = {w["id"]: w for w in emitted(session, "chat_settings")[0]}
    assert set(widgets) == {"mode", "top_k", "search_spaces", "upload_space"}
    assert [i["label"] for i in widgets["search_spaces"]["items"]] == ["Personal"]


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
    await upload_as(alice, services, tmp_path)
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
    # Partial rows, as the data layer returns them (metadata may still be JSON text).
    stored = cast("list[StepDict]", steps)
    assert memory_from_steps(stored) == [("human", "second?"), ("ai", "two [1]")]


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
        await index_uploads(
            [
                make_upload(tmp_path, "reactor.md", REACTOR),
                make_upload(tmp_path, "notes.txt", "Notes."),
            ],
            services=services,
            user_id=alice.id,
        )
    async with chainlit_context(alice):
        listing = await show_sources(services=services, user_id=alice.id)
        partial = (await forget_source("reac", services=services, user_id=alice.id)).message
        missing = (
            await forget_source("nothing-like-it", services=services, user_id=alice.id)
        ).message
        forgotten = await finish(
            await forget_source("reactor.md", services=services, user_id=alice.id), services
        )
    assert "| reactor.md" in listing.content and "| notes.txt" in listing.content
    assert "Did you mean: `/forget reactor.md`?" in partial.content
    assert "No source matches" in missing.content
    assert forgotten.content.startswith("Forgot **reactor.md**")
    assert set(chunk_counts(services.engine, alice.id)) == {"notes.txt"}


async def test_forget_cannot_touch_another_users_source(
    services: Services, make_user: Callable[..., Any], tmp_path: Path
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    await upload_as(alice, services, tmp_path)
    async with chainlit_context(bob):
        reply = (await forget_source("reactor.md", services=services, user_id=bob.id)).message
        empty = await show_sources(services=services, user_id=bob.id)
    assert "No source matches" in reply.content
    assert "no indexed sources yet" in empty.content
    assert set(chunk_counts(services.engine, alice.id)) == {"reactor.md"}


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
        names: dict[str, str] = dict(
            conn.execute(sa.text("SELECT id::text, name FROM threads")).tuples().all()
        )
    assert names[threads["command"]] == "What is the reactor's heat?"
    assert names[threads["question"]] == "Hello?"
    assert names[threads["bobs"]] == "/sources"  # not alice's chat


async def test_the_starters_questions_get_an_overview_of_the_knowledge_base(
    services: Services, make_user: Callable[..., Any], tmp_path: Path
) -> None:
    alice = make_user("alice")
    await upload_as(alice, services, tmp_path)
    questions = [s.message for s in starters() if not s.message.startswith("/")]
    assert questions == ["What is in my knowledge base?", "Summarise my documents"]
    for question in questions:
        async with chainlit_context(alice):
            msg = await answer_question(question, services=services, user_id=alice.id)
        assert "Your knowledge base has 1 source" in msg.content
        assert "reactor.md" in msg.content and "[1]" in msg.content
        assert msg.metadata == {"kind": "answer"}
