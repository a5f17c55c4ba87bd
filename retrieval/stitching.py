"""Passages widened to whole sentences at their edges, from the neighbouring chunks.

A chunk boundary falls anywhere, so the sentence that answers a question is often
split between two chunks ("... indicated that if a single" | "erroneously high AOA
sensor input ..."). Before answering, each retrieved passage is extended just far
enough into its previous and next chunk (same source, `chunk_index` +- 1, found by
the splitter's overlap) to begin and end on a sentence boundary. The widened text
is what the answer quotes and what the citation panel shows, so a quote is always
in the passage it cites.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from db.chunks import ChunkKey, chunk_texts
from db.scoped import ReadScope, read_scope
from retrieval.passages import Passage
from retrieval.sentences import sentence_spans

__all__ = ["complete_sentences", "overlap", "widen"]

MIN_OVERLAP = 20
# The splitter's overlap is at most the configured one (150 by default); beyond this a
# match is a coincidence of repeated text, not an overlap.
MAX_OVERLAP = 1000


def overlap(left: str, right: str) -> int:
    """Length of the longest end of `left` that `right` starts with (0 if < MIN_OVERLAP)."""
    for size in range(min(len(left), len(right), MAX_OVERLAP), MIN_OVERLAP - 1, -1):
        if left.endswith(right[:size]):
            return size
    return 0


def widen(text: str, previous: str | None, following: str | None) -> str:
    """`text` extended into `previous` / `following` to the edges of the sentences it
    cuts; unchanged where a neighbour is missing or does not overlap it."""
    if previous:
        size = overlap(previous, text)
        if size:
            extra = previous[: len(previous) - size]
            combined = extra + text
            cut = len(extra)
            for sentence in sentence_spans(combined):
                if sentence.end > cut:
                    if sentence.start < cut and not sentence.cut_start:
                        text = combined[sentence.start :]
                    break
    if following:
        size = overlap(text, following)
        if size:
            combined = text + following[size:]
            cut = len(text)
            for sentence in reversed(sentence_spans(combined)):
                if sentence.start < cut:
                    if sentence.end > cut and not sentence.cut_end:
                        text = combined[: sentence.end]
                    break
    return text


def _space_of(passage: Passage) -> uuid.UUID | None:
    """The passage's space, as the searches record it in its metadata."""
    value = passage.metadata.get("space_id")
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def _neighbours(passage: Passage, space_id: uuid.UUID) -> tuple[ChunkKey, ChunkKey]:
    where = (space_id, passage.source_type, passage.source_id)
    return (*where, passage.chunk_index - 1), (*where, passage.chunk_index + 1)


async def complete_sentences(
    passages: Sequence[Passage], *, engine: AsyncEngine, user_id: uuid.UUID
) -> list[Passage]:
    """`passages` with their edge sentences completed (one query for all neighbours),
    read as `user_id` from each passage's own space."""
    spaces = [_space_of(p) for p in passages]
    keys = [key for p, s in zip(passages, spaces, strict=True) if s for key in _neighbours(p, s)]
    if not keys:
        return list(passages)
    with read_scope(ReadScope(user_id=user_id)):
        async with engine.connect() as connection:
            texts = await connection.run_sync(lambda sync: chunk_texts(sync, keys=keys))
    completed = []
    for p, space_id in zip(passages, spaces, strict=True):
        if space_id is None:
            completed.append(p)
            continue
        before_key, after_key = _neighbours(p, space_id)
        text = widen(p.text, texts.get(before_key), texts.get(after_key))
        completed.append(p if text == p.text else dataclasses.replace(p, text=text))
    return completed
