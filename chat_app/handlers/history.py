"""Resuming a chat from the sidebar: rebuild the chain's memory from the stored steps."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from chat_app.handlers.ask import ANSWER_KIND
from chat_app.handlers.citations import strip_footer
from chat_app.handlers.session import MAX_HISTORY_MESSAGES, set_history

__all__ = ["memory_from_steps", "restore_memory"]


def _metadata(step: Mapping[str, Any]) -> dict[str, Any]:
    value = step.get("metadata") or {}
    if isinstance(value, str):
        import json

        value = json.loads(value or "{}")
    return value if isinstance(value, dict) else {}


def memory_from_steps(steps: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
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


def restore_memory(thread: Mapping[str, Any]) -> list[tuple[str, str]]:
    memory = memory_from_steps(thread.get("steps") or [])
    set_history(memory)
    return memory
