"""kb's data layer over Chainlit's: attachments keep their owner, uploads cut off by
a crash say so when the chat is resumed, feedback is the chat owner's only."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from chainlit.types import Feedback
from sqlalchemy.engine import Engine

from chat_app.datalayer import AccessRefused
from chat_app.services import Services
from db.models import Step, StoredFile, Thread
from tests.app_fixtures import (
    app_services,
    chainlit_context,
    data_layer,
    personal_access,
    services,
    settle,
)

__all__ = ["app_services", "data_layer", "services"]  # fixtures

CRASH = "2026-01-01T10:00:00.000000Z"
RESTART = "2026-01-01T11:00:00.000000Z"


async def test_attachments_record_their_owner_before_the_chat_row_does(
    data_layer: Any, make_user: Callable[..., Any], engine: Engine, tmp_path: Path
) -> None:
    import chainlit as cl

    alice = make_user("alice")
    path = tmp_path / "upload"
    path.write_text("The reactor runs at 4217 kelvin.")
    async with chainlit_context(alice, thread_id=str(uuid.uuid4())):
        # The chat's first message: its row is written without an owner yet.
        message = cl.Message(
            content="my file",
            type="user_message",
            elements=[cl.File(name="reactor.md", path=str(path))],
        )
        await message.send()
        await settle()
    with engine.connect() as conn:
        owners = conn.scalars(sa.select(StoredFile.user_id)).all()
    assert owners == [alice.id]


def _thread_with_steps(engine: Engine, owner: Any) -> tuple[uuid.UUID, dict[str, uuid.UUID]]:
    thread_id = uuid.uuid4()
    steps = {name: uuid.uuid4() for name in ("cut", "done", "running", "answer")}
    with engine.begin() as conn:
        conn.execute(
            sa.insert(Thread).values(
                id=thread_id, userId=owner.id, userIdentifier=owner.identifier, createdAt=CRASH
            )
        )
        # executemany takes its columns from the first row: every row names `end`.
        common = {"threadId": thread_id, "streaming": False, "createdAt": CRASH, "end": None}
        conn.execute(
            sa.insert(Step),
            [
                {
                    **common,
                    "id": steps["cut"],
                    "name": "manual.pdf",
                    "type": "tool",
                    "output": "Embedding manual.pdf: 64/1074…",
                    "start": CRASH,
                },
                {
                    **common,
                    "id": steps["done"],
                    "name": "notes.md",
                    "type": "tool",
                    "output": "Indexed 3 chunks.",
                    "start": CRASH,
                    "end": CRASH,
                },
                {
                    **common,
                    "id": steps["running"],
                    "name": "new.pdf",
                    "type": "tool",
                    "output": "Parsing…",
                    "start": "2026-01-01T11:30:00.000000Z",  # after the restart: alive
                },
                {
                    **common,
                    "id": steps["answer"],
                    "name": "kb",
                    "type": "assistant_message",
                    "output": "Partial answer",
                    "start": CRASH,
                },
            ],
        )
    return thread_id, steps


def _outputs(engine: Engine, thread_id: uuid.UUID) -> dict[uuid.UUID, tuple[str, Any, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(Step.id, Step.output, Step.isError, Step.end).where(
                Step.threadId == thread_id
            )
        ).all()
    return {r.id: (r.output, r.isError, r.end) for r in rows}


async def test_a_resumed_chat_says_which_uploads_were_cut_off(
    data_layer: Any, make_user: Callable[..., Any], engine: Engine
) -> None:
    alice = make_user("alice")
    thread_id, steps = _thread_with_steps(engine, alice)
    before = _outputs(engine, thread_id)
    thread = await data_layer.get_thread(str(thread_id))

    marked = await data_layer.mark_interrupted_steps(
        thread, user_id=alice.id, started_before=RESTART
    )

    assert [s["id"] for s in marked] == [str(steps["cut"])]
    after = _outputs(engine, thread_id)
    output, is_error, end = after[steps["cut"]]
    assert output.startswith("Embedding manual.pdf: 64/1074 — interrupted")
    assert "Send the file again" in output and is_error and end == RESTART
    for name in ("done", "running", "answer"):
        assert after[steps[name]] == before[steps[name]]
    # What the browser is sent next is the corrected chat.
    shown = {s["id"]: s for s in thread["steps"]}
    assert shown[str(steps["cut"])]["output"] == output


async def test_a_step_that_shows_a_background_job_is_not_marked_as_cut_off(
    data_layer: Any, make_user: Callable[..., Any], engine: Engine, services: Services
) -> None:
    # A job outlives the web process that queued it: the resumed chat follows it again.
    alice = make_user("alice")
    thread_id, steps = _thread_with_steps(engine, alice)
    services.job_queue().enqueue_file(
        user_id=alice.id,
        space_id=personal_access(services, alice.id).id,
        source_id="manual.pdf",
        data=b"%PDF-1.4",
        origin="chat",
        thread_id=str(thread_id),
        step_id=str(steps["cut"]),
    )
    before = _outputs(engine, thread_id)
    thread = await data_layer.get_thread(str(thread_id))

    marked = await data_layer.mark_interrupted_steps(
        thread, user_id=alice.id, started_before=RESTART
    )

    assert marked == []
    assert _outputs(engine, thread_id) == before


async def test_a_reloaded_chat_keeps_its_open_steps_open(
    data_layer: Any, make_user: Callable[..., Any], engine: Engine
) -> None:
    # Chainlit writes `defaultOpen` but does not read it back: without it a job's step
    # is collapsed after a reload and its live progress hidden.
    alice = make_user("alice")
    thread_id, steps = _thread_with_steps(engine, alice)
    with engine.begin() as conn:
        conn.execute(sa.update(Step).where(Step.id == steps["cut"]).values(defaultOpen=True))
    thread = await data_layer.get_thread(str(thread_id))
    shown = {s["id"]: s for s in thread["steps"]}
    assert shown[str(steps["cut"])]["defaultOpen"] is True
    assert not shown[str(steps["done"])].get("defaultOpen")


async def test_only_the_owner_can_mark_a_chats_steps(
    data_layer: Any, make_user: Callable[..., Any], engine: Engine
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    thread_id, _ = _thread_with_steps(engine, alice)
    before = _outputs(engine, thread_id)
    thread = await data_layer.get_thread(str(thread_id))
    await data_layer.mark_interrupted_steps(thread, user_id=bob.id, started_before=RESTART)
    assert _outputs(engine, thread_id) == before


async def test_feedback_from_the_socket_is_the_chat_owners_only(
    data_layer: Any, make_user: Callable[..., Any], engine: Engine
) -> None:
    import chainlit as cl

    alice, bob = make_user("alice"), make_user("bob")
    thread_id = str(uuid.uuid4())
    async with chainlit_context(alice, thread_id=thread_id):
        await data_layer.update_thread(thread_id, user_id=str(alice.id))
        msg = await cl.Message(content="an answer").send()
        await settle()
    async with chainlit_context(bob):
        with pytest.raises(AccessRefused):
            await data_layer.upsert_feedback(Feedback(forId=msg.id, value=0))
    async with chainlit_context(None):
        with pytest.raises(AccessRefused):
            await data_layer.upsert_feedback(Feedback(forId=msg.id, value=0))
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM feedbacks")) == 0
