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
from chat_app.storage import FILES_ROUTE
from retrieval.chain import Citation

__all__ = ["SOURCES_MARKER", "file_links", "source_elements", "sources_footer", "strip_footer"]

# Separates the answer from the footer; resuming a chat strips it from the memory.
SOURCES_MARKER = "\n\n**Sources:** "

# The newest stored attachment with that file name in one of the user's threads (not
# an empty one: a refused upload is kept as an empty placeholder, see upload_route).
_FILE_LINKS = sa.text(
    """
    SELECT DISTINCT ON (e.name) e.name, e."objectKey" AS key
    FROM elements e JOIN threads t ON t.id = e."threadId"
    JOIN stored_files f ON f.object_key = e."objectKey" AND f.size > 0
    WHERE t."userId" = :user_id AND e.name = ANY(:names) AND e."objectKey" IS NOT NULL
      AND e.type IN ('file', 'pdf', 'text', 'image')
      AND e.display IS DISTINCT FROM 'side'
    ORDER BY e.name, t."createdAt" DESC NULLS LAST
    """
)


def _label(source: Citation) -> str:
    title = source.title
    if source.source_type == "notion":
        title = f"Notion: {title}"
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


def _file_url(source: Citation, links: dict[str, str]) -> str | None:
    return links.get(source.source_id) if source.source_type == "file" else None


def source_elements(
    sources: Sequence[Citation], links: dict[str, str], *, answer_text: str = ""
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
