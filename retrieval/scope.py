"""Which spaces a search reads, and how big that readable set is.

Resolved once per search on the read engine (inside the user's `ReadScope`, so
row-level security applies here too): the spaces the user is an active member of,
narrowed to the ones asked for, with their names (citations show them). Membership is
read fresh for every search: removing a member takes effect on their next question.

The number of chunks in those spaces only chooses the plan (dense search scans small
sets exactly instead of walking the HNSW graph, see `retrieval.dense`), so it is kept
per space for `SIZE_TTL_SECONDS` (`SpaceSizes`): counting thousands of index entries
on every question cost more than the rest of a small search. A count a few seconds
old can at worst pick the slower of two correct plans.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

__all__ = ["SIZE_TTL_SECONDS", "SearchScope", "SpaceSizes", "resolve_scope"]

SIZE_TTL_SECONDS = 30.0
# Past this many remembered spaces the memory starts afresh (a bound, not an LRU:
# one count per space is cheap to redo).
SIZES_KEPT = 10_000

# Membership is joined with the account, so a disabled person reads nothing.
_READABLE = sa.text(
    """
    SELECT s.id, s.name
    FROM spaces AS s
    JOIN space_members AS m ON m.space_id = s.id
    JOIN users AS u ON u.id = m.user_id
    WHERE m.user_id = :user_id AND u.is_active
      AND (CAST(:wanted AS uuid[]) IS NULL OR s.id = ANY(CAST(:wanted AS uuid[])))
    ORDER BY s.name, s.id
    """
)

# Each space's chunks, counted only up to :cap + 1 rows of the space index (an
# index-only scan): past the cap the exact size does not matter.
_SIZES = sa.text(
    """
    SELECT s.id,
           (SELECT count(*) FROM (
                SELECT 1 FROM document_chunks WHERE space_id = s.id LIMIT :cap + 1
            ) AS capped) AS chunks
    FROM unnest(CAST(:ids AS uuid[])) AS s(id)
    """
)


@dataclass(frozen=True)
class SearchScope:
    """The spaces one search reads (id -> name) and their chunk count, capped: a count
    above `cap` means "more than `cap`"."""

    spaces: dict[uuid.UUID, str]
    chunks: int
    cap: int

    @property
    def space_ids(self) -> list[uuid.UUID]:
        return list(self.spaces)

    @property
    def small(self) -> bool:
        """Few enough chunks that an exact scan beats a filtered HNSW walk."""
        return self.chunks <= self.cap


@dataclass
class SpaceSizes:
    """Chunk counts per space (each capped), remembered for `ttl` seconds.

    One per `Retriever`; searches of every user share it (a count says nothing a
    member could not count, and only members' searches ask for it)."""

    ttl: float = SIZE_TTL_SECONDS
    clock: Callable[[], float] = time.monotonic
    _known: dict[tuple[uuid.UUID, int], tuple[int, float]] = field(default_factory=dict)

    def total(self, connection: Connection, space_ids: Sequence[uuid.UUID], cap: int) -> int:
        """The chunks of `space_ids` together, each space counted up to `cap` + 1."""
        now = self.clock()
        sizes: dict[uuid.UUID, int] = {}
        stale = []
        for space in space_ids:
            known = self._known.get((space, cap))
            if known is not None and now - known[1] < self.ttl:
                sizes[space] = known[0]
            else:
                stale.append(space)
        if stale:
            if len(self._known) > SIZES_KEPT:
                self._known.clear()
            for space, chunks in connection.execute(_SIZES, {"ids": stale, "cap": cap}):
                sizes[space] = int(chunks)
                self._known[(space, cap)] = (int(chunks), now)
        return sum(sizes.get(space, 0) for space in space_ids)


def resolve_scope(
    connection: Connection,
    *,
    user_id: uuid.UUID,
    wanted: Sequence[uuid.UUID] | None,
    cap: int,
    sizes: SpaceSizes,
) -> SearchScope:
    rows = connection.execute(
        _READABLE,
        {"user_id": user_id, "wanted": list(wanted) if wanted is not None else None},
    ).all()
    spaces = {row.id: row.name for row in rows}
    return SearchScope(
        spaces=spaces,
        chunks=sizes.total(connection, list(spaces), cap) if spaces else 0,
        cap=cap,
    )
