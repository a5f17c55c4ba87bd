"""Sources of an answer as Chainlit side elements, named "[n]" like the citations.

Chainlit turns every occurrence of an element's name in the message text into a
link that opens the element, so the answer's own "[1]" citations become clickable
and the "Sources" footer lists each one with its title. What a panel shows is built
in `citation_panel`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

import chainlit as cl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from chat_app.handlers.citation_panel import panel_markdown, quoted_sentences
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


def _file_url(source: Citation, links: dict[FileKey, str]) -> str | None:
    return links.get(file_key(source)) if source.source_type == "file" else None


def source_elements(
    sources: Sequence[Citation], links: dict[FileKey, str], *, answer_text: str = ""
) -> list[cl.Text]:
    """One side panel per source: the whole passage, the quoted sentences highlighted,
    where it comes from and a link that opens it there.

    Each element is named "[n]" like its citation. Chainlit scopes the name to the
    message it is sent with (`forId`), so "[1]" of every answer opens that answer's
    own passage (`public/kb.js` keeps Chainlit from opening them all at once).
    The quotes come from `Citation.quotes`; answers built before that field was
    filled have their quotes read back from the answer text.
    """
    fallback = quoted_sentences(answer_text)
    elements = []
    for source in sources:
        quotes = source.quotes or fallback.get(source.number, ())
        content = panel_markdown(source, quotes=quotes, file_url=_file_url(source, links))
        elements.append(cl.Text(name=f"[{source.number}]", content=content, display="side"))
    return elements


def sources_footer(sources: Sequence[Citation]) -> str:
    if not sources:
        return ""
    return SOURCES_MARKER + " · ".join(f"[{s.number}] {_label(s)}" for s in sources)


def strip_footer(text: str) -> str:
    return text.split(SOURCES_MARKER, 1)[0]
