"""Every Chainlit route kb exposes checks ownership through the chat: another user's
feedback, elements and chats are refused; the element route works for the owner."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from db.models import Element, Feedback, Step, Thread, User
from tests.kb_server import THREADS_PAGE, KbServer
from tests.web_fixtures import PASSWORD, add_account, web, web_db, web_engine

__all__ = ["web", "web_db", "web_engine"]  # fixtures

NOW = "2026-01-01T00:00:00.000000Z"


@dataclass
class Chat:
    """Alice's chat: a thread, an answer with her thumbs-up, and an element."""

    owner: User
    thread_id: uuid.UUID
    step_id: uuid.UUID
    feedback_id: uuid.UUID
    element_id: uuid.UUID


def _make_chat(engine: Engine, owner: User) -> Chat:
    chat = Chat(owner, uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4())
    with Session(engine) as session:
        session.add(
            Thread(
                id=chat.thread_id,
                name="Reactor questions",
                userId=owner.id,
                userIdentifier=owner.identifier,
                createdAt=NOW,
                metadata_={},
            )
        )
        session.flush()
        session.add(
            Step(
                id=chat.step_id,
                name="kb",
                type="assistant_message",
                threadId=chat.thread_id,
                streaming=False,
                output="It runs at 4217 kelvin [1].",
                createdAt=NOW,
            )
        )
        session.add(
            Feedback(id=chat.feedback_id, forId=chat.step_id, threadId=chat.thread_id, value=1)
        )
        session.add(
            Element(
                id=chat.element_id,
                threadId=chat.thread_id,
                forId=chat.step_id,
                type="text",
                name="[1]",
                display="side",
                props={"source": "manual.pdf", "page": 2},
                mime="text/plain",
            )
        )
        session.commit()
    return chat


@pytest.fixture
def chat(web_engine: Engine) -> Chat:
    return _make_chat(web_engine, add_account(web_engine, "alice"))


@pytest.fixture
def alice(web: KbServer, chat: Chat) -> httpx.Client:
    return web.login(chat.owner.identifier, PASSWORD)


@pytest.fixture
def mallory(web: KbServer, web_engine: Engine) -> httpx.Client:
    return web.login(add_account(web_engine, "mallory").identifier, PASSWORD)


def _feedback(engine: Engine, chat: Chat) -> list[tuple[int, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(Feedback.value, Feedback.comment).where(Feedback.forId == chat.step_id)
        ).all()
    return [(r.value, r.comment) for r in rows]


def test_another_user_cannot_change_add_or_remove_feedback(
    mallory: httpx.Client, chat: Chat, web_engine: Engine
) -> None:
    overwrite = {"id": str(chat.feedback_id), "forId": str(chat.step_id), "value": 0}
    add = {"forId": str(chat.step_id), "value": 0, "comment": "spam"}
    # A chat id of their own does not help: the message decides the chat.
    smuggled = {**add, "threadId": str(uuid.uuid4())}
    for feedback in (overwrite, add, smuggled):
        response = mallory.put("/feedback", json={"feedback": feedback, "sessionId": "x"})
        assert response.status_code == 404, response.text
    response = mallory.request("DELETE", "/feedback", json={"feedbackId": str(chat.feedback_id)})
    assert response.status_code == 404
    assert _feedback(web_engine, chat) == [(1, None)]


def test_the_owner_changes_and_removes_their_feedback(
    alice: httpx.Client, chat: Chat, web_engine: Engine
) -> None:
    feedback = {"id": str(chat.feedback_id), "forId": str(chat.step_id), "value": 0}
    changed = alice.put(
        "/feedback", json={"feedback": {**feedback, "comment": "wrong page"}, "sessionId": "x"}
    )
    assert changed.status_code == 200 and changed.json()["feedbackId"] == str(chat.feedback_id)
    assert _feedback(web_engine, chat) == [(0, "wrong page")]
    removed = alice.request("DELETE", "/feedback", json={"feedbackId": str(chat.feedback_id)})
    assert removed.status_code == 200
    assert _feedback(web_engine, chat) == []


def test_the_element_route_serves_the_owner_and_nobody_else(
    alice: httpx.Client, mallory: httpx.Client, chat: Chat
) -> None:
    path = f"/project/thread/{chat.thread_id}/element/{chat.element_id}"
    mine = alice.get(path)
    assert mine.status_code == 200
    assert mine.json()["props"] == {"source": "manual.pdf", "page": 2}
    assert mine.json()["name"] == "[1]"
    assert mallory.get(path).status_code == 404
    assert alice.get(f"/project/thread/{uuid.uuid4()}/element/{chat.element_id}").status_code == 404
    assert alice.get(f"/project/thread/{chat.thread_id}/element/not-a-uuid").status_code == 404


def test_another_users_chat_cannot_be_read_renamed_deleted_or_shared(
    mallory: httpx.Client, alice: httpx.Client, chat: Chat, web_engine: Engine
) -> None:
    thread = str(chat.thread_id)
    refused = [
        mallory.get(f"/project/thread/{thread}"),
        mallory.put("/project/thread", json={"threadId": thread, "name": "pwned"}),
        mallory.request("DELETE", "/project/thread", json={"threadId": thread}),
        mallory.put("/project/thread/share", json={"threadId": thread, "isShared": True}),
        mallory.get(f"/project/share/{thread}"),
    ]
    for response in refused:
        assert response.status_code in (401, 403, 404), (response.request.url, response.text)
        assert "Reactor questions" not in response.text and "4217" not in response.text
    listed = mallory.post("/project/threads", json=THREADS_PAGE).json()
    assert thread not in json.dumps(listed)
    # Sharing is off in kb: not even the author can publish a chat.
    assert (
        alice.put("/project/thread/share", json={"threadId": thread, "isShared": True}).status_code
        == 404
    )
    with web_engine.connect() as conn:
        row = conn.execute(
            sa.select(Thread.name, Thread.metadata_.label("meta")).where(
                Thread.id == chat.thread_id
            )
        ).one()
    assert row.name == "Reactor questions" and not (row.meta or {}).get("is_shared")


def test_a_missing_chat_is_not_found_rather_than_an_error(alice: httpx.Client) -> None:
    assert alice.get(f"/project/thread/{uuid.uuid4()}").status_code == 404


def test_anonymous_requests_are_refused(web: KbServer, chat: Chat) -> None:
    anonymous = web.client()
    assert (
        anonymous.put(
            "/feedback",
            json={"feedback": {"forId": str(chat.step_id), "value": 0}, "sessionId": "x"},
        ).status_code
        == 401
    )
    assert (
        anonymous.get(f"/project/thread/{chat.thread_id}/element/{chat.element_id}").status_code
        == 401
    )
