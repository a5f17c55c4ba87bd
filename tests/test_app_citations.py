"""Citation panels, empty uploads and chat names, through the chat handlers.

Called as Chainlit calls them (only the websocket session is mocked, see
tests/app_fixtures.py), on the real database, with fake embeddings; the LLM case
goes through the local OpenAI-compatible stub of tests/test_llm_openai_stub.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

import tests.test_llm_openai_stub as openai_stub
from chat_app.handlers.ask import answer_question
from chat_app.handlers.history import name_thread_after_question
from chat_app.services import Services
from tests.app_fixtures import (
    app_services,
    chainlit_context,
    data_layer,
    emitted,
    make_upload,
    outputs,
    services,
)
from tests.job_fixtures import index_uploads
from tests.test_llm_openai_stub import StubServer, stub

__all__ = ["app_services", "data_layer", "services", "stub"]  # fixtures, used by name

# One section longer than a snippet (300 characters), so "the whole passage" shows.
ORCHARD = (
    "# Quimby orchard\n\n"
    "The Quimby orchard grows 312 pear trees on the southern slope. The slope faces the "
    "river and gets sun all afternoon. Pickers are paid by the crate, and every crate is "
    "weighed at the gate before noon. The orchard shop sells pear cider on Saturdays. "
    "A tractor carries the crates to the barn, where they are stacked nine high. "
    "The last line of this passage mentions the blue gate."
)
REACTOR = (
    "# Zorblatt reactor\n\nThe Zorblatt reactor operates at exactly 4217 kelvin. "
    "Visitors sign the logbook at the entrance."
)


def _panels(session: Any, message: Any) -> dict[str, str]:
    """The side panels sent with one answer: name -> Markdown content."""
    sent = [e for e in emitted(session, "element") if e["forId"] == message.id]
    assert sent and all(e["display"] == "side" for e in sent)
    return {e.name: str(e.content) for e in message.elements}


async def test_each_answer_cites_its_own_passages_shown_whole_with_the_quote_in_bold(
    services: Services, make_user: Callable[..., Any], tmp_path: Path
) -> None:
    alice = make_user("alice")
    async with chainlit_context(alice):
        await index_uploads(
            [
                make_upload(tmp_path, "orchard.md", ORCHARD),
                make_upload(tmp_path, "reactor.md", REACTOR),
            ],
            services=services,
            user_id=alice.id,
        )
    async with chainlit_context(alice) as session:
        reactor = await answer_question(
            "At what temperature does the Zorblatt reactor operate?",
            services=services,
            user_id=alice.id,
        )
        orchard = await answer_question(
            "How many pear trees grow in the Quimby orchard?",
            services=services,
            user_id=alice.id,
        )
    first, second = _panels(session, reactor), _panels(session, orchard)
    assert "[1]" in first and "[1]" in second  # same names, each scoped to its message
    assert "4217 kelvin" in first["[1]"] and "Quimby" not in first["[1]"]
    assert "pear trees" in second["[1]"] and "Zorblatt" not in second["[1]"]
    # The whole passage, and what the answer quoted from it in bold.
    assert "blue gate" in second["[1]"]
    assert "**The Quimby orchard grows 312 pear trees on the southern slope.**" in second["[1]"]
    assert "*File orchard.md · section “Quimby orchard”*" in second["[1]"]


async def test_an_llm_answers_panels_show_the_cited_passage_and_what_it_quoted(
    app_services: Callable[..., Services],
    stub: StubServer,
    make_user: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base_url = f"http://127.0.0.1:{stub.server_address[1]}/v1"
    # Fake embeddings: any passage is close enough to be answered from.
    services = app_services(llm="openai:stub", llm_base_url=base_url, score_threshold=0.0)
    alice = make_user("alice")
    async with chainlit_context(alice):
        await index_uploads(
            [make_upload(tmp_path, "orchard.md", ORCHARD)],
            services=services,
            user_id=alice.id,
        )
    quoting = ["The guide says “Pickers are paid", " by the crate.” [1]"]
    monkeypatch.setattr(openai_stub, "ANSWER_PIECES", quoting)
    async with chainlit_context(alice) as session:
        quoted = await answer_question("How are pickers paid?", services=services, user_id=alice.id)
    panel = _panels(session, quoted)["[1]"]
    assert "**Pickers are paid by the crate,**" not in panel  # the quote ends at "crate"
    assert "**Pickers are paid by the crate**" in panel and "blue gate" in panel

    monkeypatch.setattr(openai_stub, "ANSWER_PIECES", ["Each crate is paid [1]."])
    async with chainlit_context(alice) as session:
        paraphrase = await answer_question(
            "How are pickers paid?", services=services, user_id=alice.id
        )
    panel = _panels(session, paraphrase)["[1]"]
    # Nothing quoted word for word: the sentence the claim rests on (most words in
    # common) is highlighted, unrelated ones are not.
    supporting = (
        "Pickers are paid by the crate, and every crate is weighed at the gate before noon."
    )
    assert "blue gate" in panel and f"**{supporting}**" in panel
    assert "**The Quimby orchard grows" not in panel and "**The orchard shop" not in panel


async def test_an_empty_file_gets_its_line_with_the_other_files(
    services: Services, make_user: Callable[..., Any], tmp_path: Path
) -> None:
    alice = make_user("alice")
    async with chainlit_context(alice) as session:
        outcomes = await index_uploads(
            [make_upload(tmp_path, "orchard.md", ORCHARD), make_upload(tmp_path, "empty.pdf", b"")],
            services=services,
            user_id=alice.id,
        )
    assert [(o.name, o.status) for o in outcomes] == [
        ("orchard.md", "indexed"),
        ("empty.pdf", "error"),
    ]
    summary = outputs(session)[-1]
    assert "Indexed **orchard.md**" in summary
    assert "empty.pdf is empty (0 bytes); nothing was indexed." in summary


async def test_a_chat_begun_with_files_and_a_remark_is_named_after_its_first_question(
    services: Services,
    data_layer: Any,
    make_user: Callable[..., Any],
    engine: Engine,
    tmp_path: Path,
) -> None:
    import chainlit as cl

    alice = make_user("alice")
    threads = {key: str(uuid.uuid4()) for key in ("remark", "question", "no-files")}
    first_messages = {
        "remark": ("Here are my documents", True),
        "question": ("What does this file say?", True),
        "no-files": ("Hello there", False),
    }
    for key, (text, with_file) in first_messages.items():
        async with chainlit_context(alice, thread_id=threads[key]):
            await data_layer.update_thread(threads[key], name=text, user_id=str(alice.id))
            upload = make_upload(tmp_path, "orchard.md", ORCHARD)
            files = [cl.File(name="orchard.md", path=str(upload.path))] if with_file else []
            await cl.Message(content=text, type="user_message", elements=files).send()
    for key in threads:
        async with chainlit_context(alice, thread_id=threads[key]):
            await name_thread_after_question(engine, alice.id, "How many pear trees are there?")
    with engine.connect() as conn:
        names: dict[str, str] = dict(
            conn.execute(sa.text("SELECT id::text, name FROM threads")).tuples().all()
        )
    assert names[threads["remark"]] == "How many pear trees are there?"
    assert names[threads["question"]] == "What does this file say?"
    assert names[threads["no-files"]] == "Hello there"
