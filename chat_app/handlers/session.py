"""Per-chat state kept in Chainlit's user session: who is asking, memory, settings."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import chainlit as cl
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from chat_app.auth import user_id_of
from chat_app.handlers.commands import SEARCH_SPACES, UPLOAD_SPACE, setting_label
from chat_app.settings import Settings
from db.spaces import SpaceAccess
from retrieval.passages import MODES, SearchMode, check_mode

__all__ = [
    "HISTORY_KEY",
    "MAX_HISTORY_MESSAGES",
    "ChatOptions",
    "chat_options",
    "current_user_id",
    "get_history",
    "remember_exchange",
    "set_history",
]

HISTORY_KEY = "kb_history"
# The chain only needs recent turns to rewrite a follow-up question.
MAX_HISTORY_MESSAGES = 20


@dataclass(frozen=True)
class ChatOptions:
    mode: SearchMode
    k: int
    spaces: list[uuid.UUID] | None  # None: every space the user can read
    upload_space: SpaceAccess  # where dropped files go


def current_user_id() -> uuid.UUID:
    return user_id_of(cl.user_session.get("user"))


def get_history() -> list[BaseMessage]:
    """The conversation memory as LangChain messages (stored as JSON-friendly pairs)."""
    pairs: list[list[str]] = cl.user_session.get(HISTORY_KEY) or []
    return [HumanMessage(text) if role == "human" else AIMessage(text) for role, text in pairs]


def set_history(messages: list[tuple[str, str]]) -> None:
    """Replace the memory; pairs of ("human"|"ai", text). Plain lists: the session is
    persisted as JSON in the thread's metadata."""
    cl.user_session.set(HISTORY_KEY, [list(m) for m in messages[-MAX_HISTORY_MESSAGES:]])


def remember_exchange(question: str, answer: str) -> None:
    pairs: list[list[str]] = cl.user_session.get(HISTORY_KEY) or []
    pairs = [*pairs, ["human", question], ["ai", answer]]
    cl.user_session.set(HISTORY_KEY, pairs[-MAX_HISTORY_MESSAGES:])


def chat_options(settings: Settings, spaces: Sequence[SpaceAccess]) -> ChatOptions:
    """The chat's choices (retrieval mode, top-k, spaces searched, upload space), checked
    against the spaces the user has now: a space they left is dropped."""
    chosen: dict[str, Any] = cl.user_session.get("chat_settings") or {}
    mode: SearchMode = settings.retrieval_mode
    if chosen.get("mode") in MODES:
        mode = check_mode(str(chosen["mode"]))
    try:
        k = int(chosen.get("top_k") or settings.top_k)
    except (TypeError, ValueError):
        k = settings.top_k
    by_id = {str(s.id): s for s in spaces}
    chosen_spaces = chosen.get(SEARCH_SPACES)
    searched = [by_id[v].id for v in chosen_spaces or [] if v in by_id]
    wanted_upload = chosen.get(UPLOAD_SPACE)
    writable = [s for s in spaces if s.can_write]
    upload = next((s for s in writable if setting_label(s) == wanted_upload), writable[0])
    return ChatOptions(
        mode=mode, k=max(1, min(k, 20)), spaces=searched or None, upload_space=upload
    )
