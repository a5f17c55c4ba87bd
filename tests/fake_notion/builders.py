"""Block and rich-text builders for fake workspaces: `paragraph("Hi")`, `table([...])`.

Each returns a `BlockSpec`; `Workspace.add_page(..., blocks=[...])` turns specs into
stored blocks with real ids. Rich text accepts plain strings or `text(...)`,
`mention_page(...)` etc. items, shaped like the API's rich text objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

RichInput = str | dict[str, Any] | Sequence[str | dict[str, Any]]

_ANNOTATIONS = {
    "bold": False,
    "italic": False,
    "strikethrough": False,
    "underline": False,
    "code": False,
    "color": "default",
}


@dataclass
class BlockSpec:
    type: str
    payload: dict[str, Any]
    children: list[BlockSpec] = field(default_factory=list)
    id: str | None = None


def text(content: str, *, link: str | None = None, code: bool = False) -> dict[str, Any]:
    return {
        "type": "text",
        "text": {"content": content, "link": {"url": link} if link else None},
        "annotations": {**_ANNOTATIONS, "code": code},
        "plain_text": content,
        "href": link,
    }


def mention_page(page_id: str, title: str) -> dict[str, Any]:
    return {
        "type": "mention",
        "mention": {"type": "page", "page": {"id": page_id}},
        "annotations": dict(_ANNOTATIONS),
        "plain_text": title,
        "href": f"https://www.notion.so/{page_id.replace('-', '')}",
    }


def mention_user(
    name: str, user_id: str = "2200a911-6a96-44bb-bd38-6bfb1e01b9f6"
) -> dict[str, Any]:
    return {
        "type": "mention",
        "mention": {
            "type": "user",
            "user": {"object": "user", "id": user_id, "name": name, "type": "person"},
        },
        "annotations": dict(_ANNOTATIONS),
        "plain_text": f"@{name}",
        "href": None,
    }


def mention_date(start: str, end: str | None = None) -> dict[str, Any]:
    return {
        "type": "mention",
        "mention": {"type": "date", "date": {"start": start, "end": end, "time_zone": None}},
        "annotations": dict(_ANNOTATIONS),
        "plain_text": f"{start} → {end}" if end else start,
        "href": None,
    }


def inline_equation(expression: str) -> dict[str, Any]:
    return {
        "type": "equation",
        "equation": {"expression": expression},
        "annotations": dict(_ANNOTATIONS),
        "plain_text": expression,
        "href": None,
    }


def rich(value: RichInput) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [text(value)] if value else []
    if isinstance(value, dict):
        return [value]
    return [text(v) if isinstance(v, str) else v for v in value]


def _texty(
    kind: str, content: RichInput, children: Sequence[BlockSpec] = (), **extra: Any
) -> BlockSpec:
    return BlockSpec(
        kind, {"rich_text": rich(content), "color": "default", **extra}, list(children)
    )


def paragraph(content: RichInput, *children: BlockSpec) -> BlockSpec:
    return _texty("paragraph", content, children)


def heading(level: int, content: RichInput, *children: BlockSpec) -> BlockSpec:
    return _texty(f"heading_{level}", content, children, is_toggleable=bool(children))


def bulleted(content: RichInput, *children: BlockSpec) -> BlockSpec:
    return _texty("bulleted_list_item", content, children)


def numbered(content: RichInput, *children: BlockSpec) -> BlockSpec:
    return _texty("numbered_list_item", content, children)


def todo(content: RichInput, checked: bool = False, *children: BlockSpec) -> BlockSpec:
    return _texty("to_do", content, children, checked=checked)


def toggle(content: RichInput, *children: BlockSpec) -> BlockSpec:
    return _texty("toggle", content, children)


def quote(content: RichInput, *children: BlockSpec) -> BlockSpec:
    return _texty("quote", content, children)


def callout(content: RichInput, emoji: str = "💡", *children: BlockSpec) -> BlockSpec:
    return _texty("callout", content, children, icon={"type": "emoji", "emoji": emoji})


def code(source: str, language: str = "plain text", caption: str = "") -> BlockSpec:
    return BlockSpec(
        "code", {"caption": rich(caption), "rich_text": rich(source), "language": language}
    )


def equation(expression: str) -> BlockSpec:
    return BlockSpec("equation", {"expression": expression})


def divider() -> BlockSpec:
    return BlockSpec("divider", {})


def table(rows: Sequence[Sequence[str]], *, header: bool = True) -> BlockSpec:
    width = max(len(r) for r in rows)
    return BlockSpec(
        "table",
        {"table_width": width, "has_column_header": header, "has_row_header": False},
        [BlockSpec("table_row", {"cells": [rich(c) for c in row]}) for row in rows],
    )


def bookmark(url: str, caption: str = "") -> BlockSpec:
    return BlockSpec("bookmark", {"caption": rich(caption), "url": url})


def embed(url: str, caption: str = "") -> BlockSpec:
    return BlockSpec("embed", {"caption": rich(caption), "url": url})


def image(caption: str = "", url: str = "https://example.com/picture.png") -> BlockSpec:
    return BlockSpec(
        "image", {"caption": rich(caption), "type": "external", "external": {"url": url}}
    )


def file_block(name: str, caption: str = "") -> BlockSpec:
    return BlockSpec(
        "file",
        {
            "caption": rich(caption),
            "type": "file",
            "name": name,
            "file": {
                "url": f"https://files.example.com/{name}?X-Amz-Signature=abc",
                "expiry_time": "2026-07-04T10:00:00.000Z",
            },
        },
    )


def synced_original(*children: BlockSpec, id: str | None = None) -> BlockSpec:
    return BlockSpec("synced_block", {"synced_from": None}, list(children), id=id)


def synced_copy(original_id: str) -> BlockSpec:
    return BlockSpec("synced_block", {"synced_from": {"type": "block_id", "block_id": original_id}})


def columns(*columns_: Sequence[BlockSpec]) -> BlockSpec:
    return BlockSpec("column_list", {}, [BlockSpec("column", {}, list(c)) for c in columns_])


def link_to_page(page_id: str) -> BlockSpec:
    return BlockSpec("link_to_page", {"type": "page_id", "page_id": page_id})


def table_of_contents() -> BlockSpec:
    return BlockSpec("table_of_contents", {"color": "default"})


def unsupported() -> BlockSpec:
    return BlockSpec("unsupported", {})


def block_of_new_type(kind: str = "meeting_notes") -> BlockSpec:
    """A type this code has never heard of (the API adds types over time)."""
    return BlockSpec(kind, {"whatever": True})
