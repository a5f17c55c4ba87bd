"""Chat history: the memory of a resumed chat, rebuilt from its stored steps; its name."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from typing import Any

import chainlit as cl
import sqlalchemy as sa
from chainlit.step import StepDict
from chainlit.types import ThreadDict
from sqlalchemy.engine import Engine

from chat_app.handlers.ask import ANSWER_KIND
from chat_app.handlers.citations import strip_footer
from chat_app.handlers.session import MAX_HISTORY_MESSAGES, set_history

__all__ = ["memory_from_steps", "name_thread_after_question", "restore_memory"]


def _metadata(step: StepDict) -> dict[str, Any]:
    value = step.get("metadata") or {}
    if isinstance(value, str):
        import json

        value = json.loads(value or "{}")
    return value if isinstance(value, dict) else {}


def memory_from_steps(steps: Iterable[StepDict]) -> list[tuple[str, str]]:
    """Questions and answers in order; commands, uploads and tool steps are not memory."""
    ordered = sorted(steps, key=lambda s: str(s.get("createdAt") or ""))
    memory: list[tuple[str, str]] = []
    for step in ordered:
        text = str(step.get("output") or "").strip()
        if not text or step.get("parentId"):
            continue
        if step.get("type") == "user_message" and not step.get("command"):
            if text.startswith("/"):
                continue
            memory.append(("human", text))
        elif step.get("type") == "assistant_message" and _metadata(step).get("kind") == ANSWER_KIND:
            memory.append(("ai", strip_footer(text)))
    # A question without its answer (stopped, failed) is dropped with it.
    paired: list[tuple[str, str]] = []
    for role, text in memory:
        if role == "ai" and paired and paired[-1][0] == "human":
            paired.append((role, text))
        elif role == "human":
            if paired and paired[-1][0] == "human":
                paired.pop()
            paired.append((role, text))
    if paired and paired[-1][0] == "human":
        paired.pop()
    return paired[-MAX_HISTORY_MESSAGES:]


def restore_memory(thread: ThreadDict) -> list[tuple[str, str]]:
    memory = memory_from_steps(thread.get("steps") or [])
    set_history(memory)
    return memory


# Chainlit names a chat after its first message. Renamed when that was a command, a
# blank message, or the text sent with files that was not a question (the app answers
# only questions that come with files, see app.py): "Here are my documents".
_RENAME = sa.text(
    """
    UPDATE threads SET name = :name
    WHERE id = :thread_id AND "userId" = :user_id
      AND (
        name IS NULL OR btrim(name) = '' OR name LIKE '/%'
        OR EXISTS (
          SELECT 1 FROM steps s
          WHERE s."threadId" = threads.id AND s.type = 'user_message'
            AND s.output = threads.name AND right(rtrim(s.output), 1) <> '?'
            AND EXISTS (SELECT 1 FROM elements e WHERE e."forId" = s.id)
        )
      )
    """
)
_NAMED_KEY = "kb_thread_named"


def _rename(engine: Engine, thread_id: str, user_id: uuid.UUID, name: str) -> None:
    with engine.begin() as conn:
        conn.execute(_RENAME, {"name": name, "thread_id": thread_id, "user_id": user_id})


async def name_thread_after_question(engine: Engine, user_id: uuid.UUID, question: str) -> None:
    """Chainlit names a chat after its first message; when that was a command
    ("/upload"), files alone, or files with a remark ("Here are my documents"), the
    first question names it instead (tried once per session)."""
    if cl.user_session.get(_NAMED_KEY):
        return
    cl.user_session.set(_NAMED_KEY, True)
    name = " ".join(question.split())[:80]
    await asyncio.to_thread(_rename, engine, cl.context.session.thread_id, user_id, name)
