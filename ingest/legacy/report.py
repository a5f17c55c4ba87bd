"""The migration's verification report, and the vector checks that fill it.

Per table: rows read, written, already present (an earlier run), skipped, and
every bad row with its id, the reason and what was done with it. For vectors: a
sample of chunks whose stored pgvector is compared with the Qdrant vector, and
a sample of exact nearest-neighbour queries run in both stores per user.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, cast

import numpy as np
import sqlalchemy as sa
from langchain_core.embeddings import Embeddings

from db.models import DocumentChunk
from ingest.legacy.mapping import chunk_id_of
from ingest.legacy.qdrant_source import LegacyQdrant
from ingest.legacy.target import Target

__all__ = [
    "MigrationReport",
    "NeighbourCheck",
    "RowIssue",
    "SampledChunk",
    "TableReport",
    "VectorCheck",
    "check_neighbours",
    "check_vectors",
]

Action = Literal["skipped", "kept", "merged", "defaulted"]
_chunks = cast(sa.Table, DocumentChunk.__table__)
#: Equality tolerance: Qdrant hands back float64 or float32, pgvector keeps float32.
_MAX_ABS_DIFF = 1e-6
_MIN_COSINE = 0.999


@dataclass(frozen=True)
class RowIssue:
    """One bad or unusual source row, and the rule applied to it."""

    table: str
    row_id: str
    reason: str
    action: Action


@dataclass
class TableReport:
    source: str
    target: str
    read: int = 0
    written: int = 0
    present: int = 0
    skipped: int = 0
    issues: list[RowIssue] = field(default_factory=list)

    def skip(self, row_id: object, reason: str, *, action: Action = "skipped") -> None:
        self.skipped += 1
        self.issues.append(RowIssue(self.source, str(row_id), reason, action))

    def note(self, row_id: object, reason: str, *, action: Action) -> None:
        """A row written with a repair (kept as text, defaulted value...)."""
        self.issues.append(RowIssue(self.source, str(row_id), reason, action))

    @property
    def accounted(self) -> bool:
        """Every row read was written, found present, or skipped with a reason."""
        return self.read == self.written + self.present + self.skipped


@dataclass(frozen=True)
class VectorCheck:
    chunk_id: str
    point_id: str
    reference: str  # "qdrant" or "re-embedded text"
    cosine: float
    max_abs_diff: float

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= _MAX_ABS_DIFF or self.cosine >= _MIN_COSINE


@dataclass(frozen=True)
class NeighbourCheck:
    query_chunk_id: str
    user_id: uuid.UUID
    qdrant_ids: tuple[str, ...]
    pgvector_ids: tuple[str, ...]

    @property
    def ok(self) -> bool:
        # Same top-k set: equal distances may be ranked differently by the two stores.
        return bool(self.qdrant_ids) and set(self.qdrant_ids) == set(self.pgvector_ids)


@dataclass(frozen=True)
class SampledChunk:
    """A migrated point picked for the vector checks."""

    chunk_id: str
    raw_point_id: int | str
    user_id: uuid.UUID
    text: str


@dataclass
class MigrationReport:
    dry_run: bool
    vector_mode: str = "not migrated (no Qdrant source given)"
    tables: list[TableReport] = field(default_factory=list)
    vector_checks: list[VectorCheck] = field(default_factory=list)
    neighbour_checks: list[NeighbourCheck] = field(default_factory=list)
    texts_embedded: int = 0
    notes: list[str] = field(default_factory=list)

    def table(self, source: str, target: str) -> TableReport:
        report = TableReport(source, target)
        self.tables.append(report)
        return report

    @property
    def issues(self) -> list[RowIssue]:
        return [issue for table in self.tables for issue in table.issues]

    @property
    def failures(self) -> list[str]:
        """Why verification failed (empty when it passed)."""
        found = [f"{t.source}: counts do not add up" for t in self.tables if not t.accounted]
        found += [f"vector of chunk {c.chunk_id} differs" for c in self.vector_checks if not c.ok]
        found += [
            f"neighbours of chunk {c.query_chunk_id} differ"
            for c in self.neighbour_checks
            if not c.ok
        ]
        return found

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_text(self, *, max_issues: int = 50) -> str:
        """Plain-text rendering (logs, tests); the CLI draws tables."""
        lines = ["DRY RUN: nothing was written." if self.dry_run else "Migration report"]
        lines.append(f"{'table':<34}{'read':>8}{'written':>9}{'present':>9}{'skipped':>9}")
        for t in self.tables:
            name = f"{t.source} -> {t.target}"
            lines.append(f"{name:<34}{t.read:>8}{t.written:>9}{t.present:>9}{t.skipped:>9}")
        lines.append(f"vectors: {self.vector_mode}; texts embedded: {self.texts_embedded}")
        good = sum(c.ok for c in self.vector_checks)
        lines.append(f"vector sample: {good}/{len(self.vector_checks)} identical")
        good = sum(c.ok for c in self.neighbour_checks)
        lines.append(f"nearest-neighbour sample: {good}/{len(self.neighbour_checks)} same top-k")
        issues = self.issues
        for issue in issues[:max_issues]:
            lines.append(f"  {issue.table} {issue.row_id}: {issue.reason} -> {issue.action}")
        if len(issues) > max_issues:
            lines.append(f"  ... and {len(issues) - max_issues} more")
        lines += [f"note: {n}" for n in self.notes]
        lines.append(
            "verification: " + ("passed" if self.ok else "FAILED: " + "; ".join(self.failures))
        )
        return "\n".join(lines)


def _compare(stored: Sequence[float], reference: Sequence[float]) -> tuple[float, float]:
    a = np.asarray(stored, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape:
        return 0.0, math.inf
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    cosine = float(a @ b / norms) if norms else 0.0
    return cosine, float(np.max(np.abs(a - b))) if a.size else 0.0


def _stored_vectors(
    target: Target, user_id: uuid.UUID, chunk_ids: Sequence[str]
) -> dict[str, list[float]]:
    query = sa.select(_chunks.c.chunk_id, _chunks.c.embedding).where(
        _chunks.c.added_by == user_id, _chunks.c.chunk_id.in_(list(chunk_ids))
    )
    with target.scoped(user_id) as conn:
        return {row.chunk_id: list(row.embedding) for row in conn.execute(query)}


def check_vectors(
    *,
    target: Target,
    qdrant: LegacyQdrant,
    sample: Sequence[SampledChunk],
    embeddings: Embeddings | None = None,
) -> list[VectorCheck]:
    """Stored pgvector vs the Qdrant vector (or, when re-embedded, the text's embedding)."""
    if not sample:
        return []
    if embeddings is not None:
        fresh = embeddings.embed_documents([s.text for s in sample])
        references = {
            s.chunk_id: (v, "re-embedded text") for s, v in zip(sample, fresh, strict=True)
        }
    else:
        points = qdrant.retrieve([s.raw_point_id for s in sample])
        references = {
            s.chunk_id: (points[str(s.raw_point_id)].vector or [], "qdrant")
            for s in sample
            if str(s.raw_point_id) in points
        }
    stored: dict[str, list[float]] = {}
    for user_id in {s.user_id for s in sample}:
        ids = [s.chunk_id for s in sample if s.user_id == user_id]
        stored.update(_stored_vectors(target, user_id, ids))
    checks = []
    for s in sample:
        reference, label = references.get(s.chunk_id, ([], "qdrant (point missing)"))
        vector = stored.get(s.chunk_id)
        cosine, diff = _compare(vector, reference) if vector is not None else (0.0, math.inf)
        checks.append(VectorCheck(s.chunk_id, str(s.raw_point_id), label, cosine, diff))
    return checks


def _pgvector_nearest(
    target: Target, user_id: uuid.UUID, vector: Sequence[float], k: int
) -> tuple[str, ...]:
    query = (
        sa.select(_chunks.c.chunk_id)
        .where(_chunks.c.added_by == user_id)
        .order_by(_chunks.c.embedding.cosine_distance(list(vector)), _chunks.c.chunk_id)
        .limit(k)
    )
    with target.scoped(user_id) as conn:
        # Exact search: the HNSW index is approximate, Qdrant's exact search is not.
        conn.execute(sa.text("SET LOCAL enable_indexscan = off"))
        try:
            return tuple(conn.execute(query).scalars())
        finally:
            conn.execute(sa.text("SET LOCAL enable_indexscan = on"))


def check_neighbours(
    *,
    target: Target,
    qdrant: LegacyQdrant,
    queries: Sequence[SampledChunk],
    payload_users: dict[uuid.UUID, set[str]],
    skipped_points: Sequence[int | str],
    k: int,
) -> list[NeighbourCheck]:
    """Use stored vectors as queries: the same top-k chunk ids in Qdrant and in pgvector."""
    if not queries:
        return []
    points = qdrant.retrieve([q.raw_point_id for q in queries])
    checks = []
    for q in queries:
        point = points.get(str(q.raw_point_id))
        if point is None or point.vector is None:
            checks.append(NeighbourCheck(q.chunk_id, q.user_id, (), ()))
            continue
        found = qdrant.nearest(
            point.vector,
            user_keys=sorted(payload_users.get(q.user_id, set())),
            exclude=skipped_points,
            limit=k,
        )
        qdrant_ids = tuple(chunk_id_of(p.point_id, p.payload) for p in found)
        checks.append(
            NeighbourCheck(
                q.chunk_id,
                q.user_id,
                qdrant_ids,
                _pgvector_nearest(target, q.user_id, point.vector, k),
            )
        )
    return checks
