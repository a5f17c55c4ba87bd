"""Sources of an answer as Chainlit side elements, named "[n]" like the citations.

Chainlit turns every occurrence of an element's name in the message text into a
link that opens the element, so the answer's own "[1]" citations become clickable
and the "Sources" footer lists each one with its title.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence

import chainlit as cl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from chat_app.storage import source_file_url
from db.models import SourceFile
from db.scoped import user_scope
from db.spaces import readable_spaces
from retrieval.chain import Citation

__all__ = [
    "SOURCES_MARKER",
    "file_key",
    "file_links",
    "source_elements",
    "sources_footer",
    "strip_footer",
]

# Separates the answer from the footer; resuming a chat strips it from the memory.
SOURCES_MARKER = "\n\n**Sources:** "

FileKey = tuple[str, str]  # (space id, source id) of an indexed file


def _label(source: Citation) -> str:
    title = source.title
    if source.source_type == "notion":
        title = f"Notion: {title}"
    # A location ("slide 3", "sheet Budget, rows 2-26", "chapter 2: ...") says more
    # than a page number where the loader gave one.
    location = getattr(source, "location", None)
    if location:
        return f"{title}, {location}"
    return f"{title}, p. {source.page}" if source.page else title


def file_key(source: Citation) -> FileKey:
    return (str(source.passage.metadata.get("space_id") or ""), source.source_id)


def file_links(
    engine: Engine, *, user_id: uuid.UUID, keys: Iterable[FileKey]
) -> dict[FileKey, str]:
    """URLs of the cited files kept in `source_files`, for the spaces this user can read."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    table = SourceFile.__table__
    with user_scope(engine, user_id) as conn:
        readable = [s.id for s in readable_spaces(conn, user_id=user_id)]
        rows = conn.execute(
            sa.select(table.c.id, table.c.space_id, table.c.source_id).where(
                table.c.space_id.in_(readable),
                sa.tuple_(sa.cast(table.c.space_id, sa.Text), table.c.source_id).in_(wanted),
            )
        ).all()
    return {(str(r.space_id), r.source_id): source_file_url(r.id) for r in rows}


def _quote_line(line: str) -> str:
    """A passage line shown as text: a leading "#", "-" or "1." must not become markup."""
    stripped = line.lstrip()
    if stripped[:1] in ("#", "-", "*", "+", ">") or re.match(r"\d+[.)]\s", stripped):
        return "\\" + stripped
    return stripped


def _link(source: Citation, links: dict[FileKey, str]) -> str | None:
    if source.url:
        return source.url
    return links.get(file_key(source))


def source_elements(sources: Sequence[Citation], links: dict[FileKey, str]) -> list[cl.Text]:
    """One side panel per source: title, page, the passage, and where to open it."""
    elements = []
    for source in sources:
        lines = [f"### {_label(source)}"]
        kind = "Notion page" if source.source_type == "notion" else "File"
        space = source.passage.metadata.get("space_name")
        where = f" · space: {space}" if space else ""
        lines.append(f"*{kind}: {source.source_id}{where}*")
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


def sources_footer(sources: Sequence[Citation]) -> str:
    if not sources:
        return ""
    return SOURCES_MARKER + " · ".join(f"[{s.number}] {_label(s)}" for s in sources)


def strip_footer(text: str) -> str:
    return text.split(SOURCES_MARKER, 1)[0]
