"""Loose legacy values -> typed ones.

SQLite stores whatever it was given: timestamps arrive as ISO strings (with or
without a zone, `T` or space) or Unix seconds, booleans as 0/1/"true", JSON as
text that may not parse. Each function returns a typed value or None (never
raises), so callers decide the rule for a bad value and report it.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "InvalidJson",
    "chainlit_timestamp",
    "parse_bool",
    "parse_int",
    "parse_json",
    "parse_text",
    "parse_timestamp",
]

#: Unix values above this are taken as milliseconds (year 5138 in seconds).
_MILLISECONDS_THRESHOLD = 1e11


def parse_timestamp(value: Any) -> datetime | None:
    """An aware UTC datetime, or None when absent or unreadable.

    Naive ISO strings are taken as UTC: the legacy app wrote `datetime.utcnow()`.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, int | float):
        return _from_unix(float(value))
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value).strip()
    if not text:
        return None
    try:
        return _from_unix(float(text))
    except ValueError:
        pass
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _from_unix(seconds: float) -> datetime | None:
    if not math.isfinite(seconds) or seconds < 0:
        return None
    if seconds > _MILLISECONDS_THRESHOLD:
        seconds /= 1000.0
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def chainlit_timestamp(moment: datetime) -> str:
    """Chainlit's text timestamp (`...T12:00:00.000000Z`); fixed width: text order = time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_bool(value: Any, *, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    text = str(value).strip().lower()
    if text in ("1", "true", "t", "yes", "y", "on"):
        return True
    if text in ("0", "false", "f", "no", "n", "off"):
        return False
    return default


def parse_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return int(number) if math.isfinite(number) else None


def parse_text(value: Any) -> str | None:
    """Text with surrounding blanks removed; None for NULL or blank."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value).strip()
    return text or None


class InvalidJson:
    """Marker result of `parse_json` for text that is not JSON; keeps the raw text."""

    __slots__ = ("raw",)

    def __init__(self, raw: str) -> None:
        self.raw = raw


def parse_json(value: Any) -> Any:
    """Parsed JSON; None for NULL/blank; `InvalidJson(raw)` when it does not parse."""
    if value is None:
        return None
    if isinstance(value, dict | list):
        return value
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value)
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return InvalidJson(text)
