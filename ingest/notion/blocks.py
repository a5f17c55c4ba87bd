"""Notion blocks -> Markdown, recursively through children.

`fetch_children(block_id)` yields a block's direct children (every page of
results); `NotionClient.list_children` is the real one, a dict lookup serves in
tests. Child pages and child databases are not inlined: they are separate
sources, listed in the result so the walk can visit them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ingest.notion.errors import NotionAccessDenied

__all__ = [
    "FetchChildren",
    "RenderedPage",
    "notion_link",
    "page_title",
    "properties_lines",
    "render_blocks",
    "render_page",
    "rich_text",
]

log = logging.getLogger(__name__)

FetchChildren = Callable[[str], Iterable[dict[str, Any]]]
Block = dict[str, Any]

_LIST_INDENT = {
    "bulleted_list_item": "  ",
    "numbered_list_item": "   ",
    "to_do": "  ",
    "toggle": "  ",
}
_MEDIA_LABEL = {"image": "Image", "video": "Video", "file": "File", "pdf": "PDF", "audio": "Audio"}
_LINK_BLOCKS = ("bookmark", "embed", "link_preview")
_SILENT = frozenset({"table_of_contents", "breadcrumb", "template", "unsupported"})


@dataclass
class RenderedPage:
    """A page's Markdown and the child pages / databases it contains."""

    markdown: str
    child_pages: list[tuple[str, str]] = field(default_factory=list)
    child_databases: list[tuple[str, str]] = field(default_factory=list)


def notion_link(object_id: str) -> str:
    return f"https://www.notion.so/{object_id.replace('-', '')}"


def rich_text(items: Sequence[dict[str, Any]] | None) -> str:
    """Rich text as Markdown-ish plain text: links kept as [text](url), mentions as text."""
    parts: list[str] = []
    for item in items or ():
        text = item.get("plain_text") or ""
        kind = item.get("type")
        if kind == "equation":
            text = f"${item.get('equation', {}).get('expression', text)}$"
        elif kind == "text":
            href = item.get("href") or ((item.get("text") or {}).get("link") or {}).get("url")
            if (item.get("annotations") or {}).get("code") and text:
                text = f"`{text}`"
            if href and href != text and text.strip():
                text = f"[{text}]({href})"
        parts.append(text)
    return "".join(parts)


def page_title(page: dict[str, Any]) -> str:
    """The text of a page's title property (or a data source's / database's title)."""
    if isinstance(page.get("title"), list):
        return rich_text(page["title"]).strip() or "Untitled"
    for prop in (page.get("properties") or {}).values():
        if isinstance(prop, dict) and prop.get("type") == "title":
            return rich_text(prop.get("title")).strip() or "Untitled"
    return "Untitled"


def _property_value(prop: dict[str, Any]) -> str:
    kind = prop.get("type")
    value = prop.get(kind) if isinstance(kind, str) else None
    if value is None or value == [] or value == "":
        return ""
    if kind in ("title", "rich_text"):
        return rich_text(value)
    if kind in ("select", "status"):
        return str(value.get("name", ""))
    if kind == "multi_select":
        return ", ".join(str(o.get("name", "")) for o in value)
    if kind == "date":
        start, end = value.get("start"), value.get("end")
        return f"{start} → {end}" if end else str(start or "")
    if kind == "checkbox":
        return "yes" if value else "no"
    if kind in ("people", "created_by", "last_edited_by"):
        people = value if isinstance(value, list) else [value]
        return ", ".join(p["name"] for p in people if isinstance(p, dict) and p.get("name"))
    if kind == "files":
        return ", ".join(str(f.get("name", "")) for f in value)
    if kind == "formula":
        return _property_value(value)
    if kind == "rollup":
        if value.get("type") == "array":
            return ", ".join(filter(None, (_property_value(v) for v in value.get("array", []))))
        return _property_value(value)
    if kind == "unique_id":
        prefix = value.get("prefix")
        return f"{prefix}-{value.get('number')}" if prefix else str(value.get("number", ""))
    if kind == "relation":
        return ""  # bare page ids: nothing a reader or a search can use
    if kind in (
        "number",
        "url",
        "email",
        "phone_number",
        "string",
        "boolean",
        "created_time",
        "last_edited_time",
    ):
        return str(value)
    return ""


def properties_lines(page: dict[str, Any]) -> list[str]:
    """`Name: value` for each non-empty property other than the title (database rows)."""
    lines = []
    for name, prop in (page.get("properties") or {}).items():
        if not isinstance(prop, dict) or prop.get("type") == "title":
            continue
        value = _property_value(prop).strip()
        if value:
            lines.append(f"{name}: {value}")
    return lines


class _Renderer:
    def __init__(self, fetch_children: FetchChildren) -> None:
        self.fetch_children = fetch_children
        self.child_pages: list[tuple[str, str]] = []
        self.child_databases: list[tuple[str, str]] = []
        self._synced_seen: set[str] = set()

    def children(self, block: Block) -> list[Block]:
        if not block.get("has_children"):
            return []
        return [b for b in self.fetch_children(block["id"]) if not b.get("in_trash")]

    def render(self, blocks: Sequence[Block]) -> str:
        """Blocks at one level joined: list items on consecutive lines, others apart."""
        out: list[str] = []
        previous_item = False
        number = 0
        for block in blocks:
            kind = block.get("type", "")
            number = number + 1 if kind == "numbered_list_item" else 0
            text = self.block(block, number)
            if not text:
                continue
            is_item = kind in _LIST_INDENT and kind != "toggle"
            if out:
                out.append("\n" if (is_item and previous_item) else "\n\n")
            out.append(text)
            previous_item = is_item
        return "".join(out)

    def nested(self, block: Block, indent: str) -> str:
        """The block's children on the following lines, indented under it."""
        inner = self.render(self.children(block))
        if not inner:
            return ""
        return "".join(f"\n{indent}{line}" if line else "\n" for line in inner.split("\n"))

    def block(self, block: Block, number: int) -> str:
        kind = block.get("type", "")
        data = block.get(kind) or {}
        text = rich_text(data.get("rich_text"))
        if kind == "paragraph":
            return text + self.nested(block, "  ") if block.get("has_children") else text
        if kind.startswith("heading_") and kind[8:].isdigit():
            level = min(int(kind[8:]), 6)
            body = self.render(self.children(block))
            return f"{'#' * level} {text}" + (f"\n\n{body}" if body else "")
        if kind == "bulleted_list_item":
            return f"- {text}" + self.nested(block, "  ")
        if kind == "numbered_list_item":
            return f"{number}. {text}" + self.nested(block, "   ")
        if kind == "to_do":
            mark = "x" if data.get("checked") else " "
            return f"- [{mark}] {text}" + self.nested(block, "  ")
        if kind == "toggle":
            return f"{text}" + self.nested(block, "  ")
        if kind in ("quote", "callout"):
            icon = (data.get("icon") or {}).get("emoji") if kind == "callout" else None
            head = f"{icon} {text}" if icon else text
            body = self.render(self.children(block))
            lines = (head + (f"\n\n{body}" if body else "")).split("\n")
            return "\n".join(f"> {line}" if line else ">" for line in lines)
        if kind == "code":
            caption = rich_text(data.get("caption"))
            language = data.get("language") or ""
            fence = f"```{language}\n{text}\n```"
            return f"{fence}\n{caption}" if caption else fence
        if kind == "equation":
            return f"$$\n{data.get('expression', '')}\n$$"
        if kind == "divider":
            return "---"
        if kind == "table":
            return self.table(block, data)
        if kind in ("column_list", "column"):
            return self.render(self.children(block))
        if kind == "synced_block":
            return self.synced(block, data)
        if kind == "child_page":
            title = data.get("title") or "Untitled"
            self.child_pages.append((block["id"], title))
            return f"[{title}]({notion_link(block['id'])})"
        if kind == "child_database":
            title = data.get("title") or "Untitled"
            self.child_databases.append((block["id"], title))
            return f"[{title}]({notion_link(block['id'])})"
        if kind == "link_to_page":
            target = data.get(data.get("type", ""), "")
            return f"[Linked page]({notion_link(target)})" if target else ""
        if kind in _LINK_BLOCKS:
            url = data.get("url") or ""
            caption = rich_text(data.get("caption"))
            return f"[{caption or url}]({url})" if url else caption
        if kind in _MEDIA_LABEL:
            caption = rich_text(data.get("caption")) or data.get("name") or ""
            return f"{_MEDIA_LABEL[kind]}: {caption}" if caption else ""
        if kind not in _SILENT:
            log.debug("Skipping Notion block %s of unknown type %r", block.get("id"), kind)
        return ""

    def table(self, block: Block, data: dict[str, Any]) -> str:
        rows = [r for r in self.children(block) if r.get("type") == "table_row"]
        if not rows:
            return ""
        width = int(data.get("table_width") or max(len(r["table_row"]["cells"]) for r in rows))
        lines = []
        for i, row in enumerate(rows):
            cells = [
                rich_text(c).replace("|", "\\|").replace("\n", " ").strip()
                for c in row["table_row"].get("cells", [])
            ]
            cells += [""] * (width - len(cells))
            lines.append("| " + " | ".join(cells) + " |")
            if i == 0:
                # Markdown tables need a header row: the first row is the header whether
                # or not Notion marks it as one.
                lines.append("|" + " --- |" * width)
        return "\n".join(lines)

    def synced(self, block: Block, data: dict[str, Any]) -> str:
        source = (data.get("synced_from") or {}).get("block_id")
        if source is None:
            return self.render(self.children(block))
        if source in self._synced_seen:
            return ""
        self._synced_seen.add(source)
        try:
            originals = [b for b in self.fetch_children(source) if not b.get("in_trash")]
        except NotionAccessDenied:
            log.debug("Synced block %s: original %s is not shared; skipped", block["id"], source)
            return ""
        return self.render(originals)


def render_blocks(blocks: Sequence[Block], fetch_children: FetchChildren) -> RenderedPage:
    """Markdown of `blocks` (one level, children fetched on demand)."""
    renderer = _Renderer(fetch_children)
    markdown = renderer.render([b for b in blocks if not b.get("in_trash")])
    return RenderedPage(markdown, renderer.child_pages, renderer.child_databases)


def render_page(page_id: str, fetch_children: FetchChildren) -> RenderedPage:
    """Markdown of a whole page's content."""
    return render_blocks(list(fetch_children(page_id)), fetch_children)
