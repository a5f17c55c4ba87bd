"""Sources of an answer as Chainlit side elements, named "[n]" like the citations.

Chainlit turns every occurrence of an element's name in the message text into a
link that opens the element, so the answer's own "[1]" citations become clickable
and the "Sources" footer lists each one with its title.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import chainlit as cl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from chat_app.storage import FILES_ROUTE

__all__ = ["SOURCES_MARKER", "file_links", "source_elements", "sources_footer", "strip_footer"]

# Separates the answer from the footer; resuming a chat strips it from the memory.
SOURCES_MARKER = "\n\n**Sources:** "

# The newest stored attachment with that file name in one of the user's threads.
_FILE_LINKS = sa.text(
    """
    SELECT DISTINCT ON (e.name) e.name, e."objectKey" AS key
    FROM elements e JOIN threads t ON t.id = e."threadId"
    WHERE t."userId" = :user_id AND e.name = ANY(:names) AND e."objectKey" IS NOT NULL
      AND e.type IN ('file', 'pdf', 'text', 'image')
      AND e.display IS DISTINCT FROM 'side'
    ORDER BY e.name, t."createdAt" DESC NULLS LAST
    """
)


def _label(source: Any) -> str:
    title = source.title or source.source_id
    if source.source_type == "notion":
        title = f"Notion: {title}"
    # A location ("slide 3", "sheet Budget, rows 2-26", "chapter 2: ...") says more
    # than a page number where the loader gave one.
    location = getattr(source, "location", None)
    if location:
        return f"{title}, {location}"
    return f"{title}, p. {source.page}" if source.page else title


def file_links(engine: Engine, *, user_id: uuid.UUID, names: Iterable[str]) -> dict[str, str]:
    """Read URLs of uploaded files (chat attachments) by name, for this user only."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(_FILE_LINKS, {"user_id": user_id, "names": wanted}).all()
    from urllib.parse import quote

    return {row.name: f"{FILES_ROUTE}/{quote(row.key)}" for row in rows}


def _quote_line(line: str) -> str:
    """A passage line shown as text: a leading "#", "-" or "1." must not become markup."""
    stripped = line.lstrip()
    if stripped[:1] in ("#", "-", "*", "+", ">") or re.match(r"\d+[.)]\s", stripped):
        return "\\" + stripped
    return stripped


def _link(source: Any, links: dict[str, str]) -> str | None:
    if source.url:
        return str(source.url)
    return links.get(source.source_id)


def source_elements(sources: Sequence[Any], links: dict[str, str]) -> list[cl.Text]:
    """One side panel per source: title, page, the passage, and where to open it."""
    elements = []
    for source in sources:
        lines = [f"### {_label(source)}"]
        kind = "Notion page" if source.source_type == "notion" else "File"
        lines.append(f"*{kind}: {source.source_id}*")
        lines.append("")
        lines.extend(
            f"> {_quote_line(line)}" if line.strip() else ">"
            for line in source.snippet.splitlines()
        )
        link = _link(source, links)
        if link:
            opener = "Open in Notion" if source.source_type == "notion" else "Open the file"
            lines += ["", f"[{opener}]({link})"]
        elements.append(
            cl.Text(name=f"[{source.number}]", content="\n".join(lines), display="side")
        )
    return elements


def sources_footer(sources: Sequence[Any]) -> str:
    if not sources:
        return ""
    return SOURCES_MARKER + " · ".join(f"[{s.number}] {_label(s)}" for s in sources)


def strip_footer(text: str) -> str:
    return text.split(SOURCES_MARKER, 1)[0]
