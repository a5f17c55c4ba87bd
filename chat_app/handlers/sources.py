"""`/sources` lists what the user's spaces hold; `/forget <source>` removes one.

A removal is a job, queued after any indexing of the same source (so a removal and an
upload of one file never race); the reply says it is queued and a second message says
when it is done."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import chainlit as cl

from chat_app.handlers.jobs import Started, in_background, watcher
from chat_app.handlers.spaces import user_spaces
from chat_app.services import Services
from db.chunks import SourceSummary, list_sources
from db.jobs import JobRow
from db.scoped import user_scope
from db.spaces import SpaceAccess

__all__ = [
    "find_sources",
    "forget_source",
    "list_user_sources",
    "removal_message",
    "show_sources",
]

_MAX_LISTED = 100


def list_user_sources(
    services: Services, user_id: uuid.UUID, spaces: Sequence[SpaceAccess]
) -> list[SourceSummary]:
    with user_scope(services.engine, user_id) as conn:
        return list_sources(conn, space_ids=[s.id for s in spaces])


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _kind(source: SourceSummary) -> str:
    return "Notion" if source.source_type == "notion" else source.source_type.capitalize()


async def show_sources(*, services: Services, user_id: uuid.UUID) -> cl.Message:
    """The sources of every space the user can read, grouped by space, with who added them."""
    spaces = await asyncio.to_thread(user_spaces, services, user_id)
    sources = await asyncio.to_thread(list_user_sources, services, user_id, spaces)
    if not sources:
        text = (
            "Your spaces have no indexed sources yet. Drop a file into the chat (or use "
            "`/upload`), or connect Notion with `/notion`."
        )
    else:
        total = sum(s.chunks for s in sources)
        lines = [f"**Sources in your spaces** ({len(sources)}, {total} chunks)"]
        listed = 0
        for space in spaces:
            mine = [s for s in sources if s.space_id == space.id]
            if not mine:
                continue
            name = "Personal" if space.kind == "personal" else space.name
            lines += [
                "",
                f"**{_escape(name)}** ({space.role})",
                "",
                "| source | type | chunks | added by | updated |",
                "|---|---|---|---|---|",
            ]
            for s in mine[: max(0, _MAX_LISTED - listed)]:
                lines.append(_row(s))
            listed += len(mine)
        if listed > _MAX_LISTED:
            lines.append(f"\n…and {listed - _MAX_LISTED} more.")
        lines.append("\nRemove one with `/forget <source>` (editors and owners).")
        text = "\n".join(lines)
    msg = cl.Message(content=text, metadata={"kind": "sources"})
    await msg.send()
    return msg


def _row(s: SourceSummary) -> str:
    name = _escape(s.source_id)
    title = f" — {_escape(s.title)}" if s.title and s.title != s.source_id else ""
    if s.source_url:
        name = f"[{name}]({s.source_url})"
    who = _escape(s.added_by or "")
    return f"| {name}{title} | {_kind(s)} | {s.chunks} | {who} | {s.updated_at:%Y-%m-%d %H:%M} |"


def find_sources(
    sources: list[SourceSummary], query: str
) -> tuple[list[SourceSummary], list[SourceSummary]]:
    """(exact matches by source id or title, partial case-insensitive matches)."""
    wanted = query.strip().strip("\"'`")
    exact = [s for s in sources if wanted in (s.source_id, s.title)]
    lowered = wanted.lower()
    partial = [
        s
        for s in sources
        if s not in exact
        and (lowered in s.source_id.lower() or (s.title and lowered in s.title.lower()))
    ]
    return exact, partial


def removal_message(row: JobRow) -> cl.Message:
    """The message that reports how a removal job ended."""
    if row.status == "done" and int(row.result.get("removed", 0)) > 0:
        text = (
            f"Forgot **{row.title}** ({row.result['removed']} chunks). "
            "It will not be used in answers any more."
        )
    elif row.status == "done":
        text = f"**{row.title}** was already gone."
    else:
        text = f"Could not forget **{row.title}**: {row.error or row.status}."
    return cl.Message(content=text, metadata={"kind": "forget"})


async def forget_source(query: str, *, services: Services, user_id: uuid.UUID) -> Started:
    """Remove a source from a space where the user is an editor or owner."""
    if not query.strip():
        text = "Say which source to forget: `/forget report.pdf` (see `/sources`)."
    else:
        spaces = await asyncio.to_thread(user_spaces, services, user_id)
        writable = [s for s in spaces if s.can_write]
        sources = await asyncio.to_thread(list_user_sources, services, user_id, writable)
        matches, similar = find_sources(sources, query)
        if not matches and similar:
            # Deleting is not undoable: a partial name only suggests.
            names = ", ".join(f"`/forget {s.source_id}`" for s in similar[:10])
            text = f"No source is named **{query.strip()}**. Did you mean: {names}?"
        elif not matches:
            text = (
                f"No source matches **{query.strip()}** in the spaces where you can remove "
                "sources (yours, and shared spaces where you are an editor or owner). "
                "`/sources` lists them."
            )
        elif len(matches) > 1:
            names = ", ".join(f"`{s.source_id}` ({_kind(s)})" for s in matches[:10])
            text = f"**{query.strip()}** names several sources: {names}. Give the source name."
        else:
            return await _queue_removal(matches[0], services=services, user_id=user_id)
    msg = cl.Message(content=text, metadata={"kind": "forget"})
    await msg.send()
    return Started(msg)


async def _queue_removal(
    source: SourceSummary, *, services: Services, user_id: uuid.UUID
) -> Started:
    job_id = await asyncio.to_thread(
        services.job_queue().enqueue_removal,
        user_id=user_id,
        space_id=source.space_id,
        source_type=source.source_type,
        source_id=source.source_id,
        title=source.source_id,
        origin="chat",
    )
    msg = cl.Message(
        content=f"Removing **{source.source_id}** ({source.chunks} chunks)…",
        metadata={"kind": "forget"},
    )
    await msg.send()

    async def follow() -> cl.Message:
        last: JobRow | None = None
        async for row in watcher(services).follow(job_id):
            last = row
        if last is None:
            return msg
        final = removal_message(last)
        await final.send()
        return final

    return Started(msg, in_background(follow()))
