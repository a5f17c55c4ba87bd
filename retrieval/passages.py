"""The retrieval vocabulary: search modes, filters, and the one hit type.

Every search (dense, keyword, fused) returns `Passage`s, and an answer cites the
same objects: one type from the SQL row to the citation panel.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

from db.errors import InvalidInput

__all__ = ["MODES", "Passage", "SearchFilters", "SearchMode", "check_mode"]

SearchMode = Literal["hybrid", "vector", "keyword"]
MODES: tuple[SearchMode, ...] = get_args(SearchMode)


def check_mode(mode: str) -> SearchMode:
    """`mode` as a `SearchMode`, or a clear error naming the valid ones."""
    if mode not in MODES:
        raise InvalidInput(
            f"Unknown retrieval mode {mode!r}.", hint=f"Use one of: {', '.join(MODES)}."
        )
    return cast(SearchMode, mode)


@dataclass(frozen=True)
class SearchFilters:
    """Optional metadata filters, applied in SQL next to the scope filter."""

    source_type: str | None = None
    source_id: str | None = None

    @classmethod
    def from_dict(cls, filters: dict[str, str] | None) -> SearchFilters:
        filters = dict(filters or {})
        unknown = set(filters) - {"source_type", "source_id"}
        if unknown:
            raise InvalidInput(
                f"Unknown search filter(s): {', '.join(sorted(unknown))}.",
                hint="Filter by source_type and/or source_id.",
            )
        return cls(source_type=filters.get("source_type"), source_id=filters.get("source_id"))

    def equalities(self) -> dict[str, str]:
        """The column = value pairs these filters require."""
        pairs = {"source_type": self.source_type, "source_id": self.source_id}
        return {column: value for column, value in pairs.items() if value}


@dataclass(frozen=True)
class Passage:
    """One chunk found by a search, with that search's score.

    `score` is the mode's own score: cosine similarity (vector), the BM25 rank
    (keyword) or the fused score (hybrid). `similarity` is the cosine similarity to
    the question whenever a query vector was computed, which is what the "don't know"
    threshold compares against.
    """

    chunk_id: str
    text: str
    source_type: str
    source_id: str
    source_url: str | None
    chunk_index: int
    score: float
    similarity: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str | None:
        value = self.metadata.get("title")
        return str(value) if value else None

    @property
    def page(self) -> int | None:
        value = self.metadata.get("page")
        try:
            return int(value) if value is not None else None
        except (TypeError, ValueError):
            return None

    @property
    def location(self) -> str | None:
        """Where in the file, for formats without pages: "slide 3", "sheet Budget, rows 2-26"."""
        value = self.metadata.get("location")
        return str(value) if value else None

    def rescored(self, score: float) -> Passage:
        """The same passage with another score (e.g. after fusion)."""
        return dataclasses.replace(self, score=score)
