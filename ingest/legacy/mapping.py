"""Legacy natural keys -> our ids, and legacy values -> our column values.

Ids are uuid5 of the legacy natural key, so every run maps a legacy row to the
same new row: re-runs hit ON CONFLICT instead of duplicating.
"""

from __future__ import annotations

import uuid
from typing import Any

from ingest.legacy.coerce import InvalidJson

__all__ = [
    "LEGACY_NAMESPACE",
    "ROLE_TO_STEP_TYPE",
    "chunk_id_of",
    "json_value",
    "step_id",
    "thread_id",
    "user_id",
]

#: Fixed namespace: changing it would make a re-run duplicate everything.
LEGACY_NAMESPACE = uuid.UUID("6f1c3e0a-58b2-4c0e-9d4f-1b7a2c9e5d30")

#: Legacy message roles -> Chainlit step types (what `cl.Message` writes).
ROLE_TO_STEP_TYPE: dict[str, str] = {
    "user": "user_message",
    "human": "user_message",
    "assistant": "assistant_message",
    "ai": "assistant_message",
    "bot": "assistant_message",
    "system": "system_message",
}


def user_id(legacy_user_key: str) -> uuid.UUID:
    """`users.user_id` (or `users.id` when it has none) -> `users.id`."""
    return uuid.uuid5(LEGACY_NAMESPACE, f"user:{legacy_user_key}")


def thread_id(legacy_session_id: str) -> uuid.UUID:
    """`chat_sessions.session_id` -> `threads.id`."""
    return uuid.uuid5(LEGACY_NAMESPACE, f"session:{legacy_session_id}")


def step_id(legacy_message_id: str) -> uuid.UUID:
    """`chat_messages.id` -> `steps.id`."""
    return uuid.uuid5(LEGACY_NAMESPACE, f"message:{legacy_message_id}")


def json_value(parsed: Any, *, raw_key: str) -> tuple[dict[str, Any], bool]:
    """A JSON column's value as a dict for JSONB, and whether the text was invalid.

    Invalid JSON is kept as text under `raw_key` (the row is still migrated);
    a non-object value is kept under "value".
    """
    if isinstance(parsed, InvalidJson):
        return {raw_key: parsed.raw}, True
    if parsed is None:
        return {}, False
    if isinstance(parsed, dict):
        return dict(parsed), False
    return {"value": parsed}, False


def chunk_id_of(point_id: str, payload: dict[str, Any]) -> str:
    """The payload's `chunk_id`, or the Qdrant point id when the payload has none."""
    value = payload.get("chunk_id")
    text = str(value).strip() if value is not None else ""
    return text or point_id
