"""Hybrid fusion: one ranking from the dense (cosine) and keyword (BM25) lists.

Two families, both measured on SciFact's training split by `bench/fusion.py`:

- reciprocal rank fusion (`reciprocal_rank_fusion`, or `fuse("rrf", ...)`): only the
  ranks count, `1 / (k + dense rank) + keyword_weight / (k + keyword rank)`;
- convex combinations of the two scores, each passage of the union scored on both
  sides (keyword hits carry their cosine, dense-only passages get their BM25):
  `alpha * cos' + (1 - alpha) * bm25'`, where the primes are the scores normalised
  per question: `convex-max` divides BM25 by the question's largest possible score
  (the sum of its words' idf) and keeps the cosine; `convex-minmax` maps each side
  to 0..1 over the candidates; `convex-z` takes z-scores over the candidates;
  `convex-top` divides each side by its best score among the candidates (Bruch et
  al.'s "theoretical min-max": 0 is each side's floor).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from retrieval.passages import Passage

__all__ = ["FUSIONS", "Candidate", "fuse", "reciprocal_rank_fusion"]

FUSIONS = ("rrf", "convex-max", "convex-minmax", "convex-z", "convex-top")


@dataclass(frozen=True)
class Candidate:
    """One passage of the union of both lists: its scores on both sides and its rank in
    each list it is in (1-based; None when only the other side found it)."""

    key: str
    cosine: float
    bm25: float
    dense_rank: int | None
    keyword_rank: int | None


def _minmax(values: Sequence[float]) -> list[float]:
    low, high = min(values), max(values)
    if high <= low:
        return [0.0 for _ in values]
    return [(v - low) / (high - low) for v in values]


def _by_top(values: Sequence[float]) -> list[float]:
    top = max(values)
    return [v / top for v in values] if top > 0 else [0.0 for _ in values]


def _z(values: Sequence[float]) -> list[float]:
    if len(values) < 2:
        return [0.0 for _ in values]
    mean, spread = statistics.fmean(values), statistics.pstdev(values)
    if spread == 0:
        return [0.0 for _ in values]
    return [(v - mean) / spread for v in values]


def fuse(
    name: str,
    candidates: Sequence[Candidate],
    *,
    bm25_max: float = 1.0,
    alpha: float = 0.5,
    keyword_weight: float = 1.0,
    k: float = 60,
) -> list[tuple[Candidate, float]]:
    """`candidates` with their fused score, best first, by the fusion `name` (one of
    `FUSIONS`); ties go to the smaller key, so results are stable."""
    if not candidates:
        return []
    if name == "rrf":
        scores = [
            (1 / (k + c.dense_rank) if c.dense_rank else 0.0)
            + (keyword_weight / (k + c.keyword_rank) if c.keyword_rank else 0.0)
            for c in candidates
        ]
    else:
        cosines = [c.cosine for c in candidates]
        keyword = [c.bm25 for c in candidates]
        if name == "convex-max":
            scale = bm25_max if bm25_max > 0 else 1.0
            keyword = [b / scale for b in keyword]
        elif name == "convex-minmax":
            cosines, keyword = _minmax(cosines), _minmax(keyword)
        elif name == "convex-z":
            cosines, keyword = _z(cosines), _z(keyword)
        elif name == "convex-top":
            cosines, keyword = _by_top(cosines), _by_top(keyword)
        else:
            raise ValueError(f"unknown fusion {name!r}; one of {', '.join(FUSIONS)}")
        scores = [alpha * c + (1 - alpha) * b for c, b in zip(cosines, keyword, strict=True)]
    order = sorted(range(len(candidates)), key=lambda i: (-scores[i], candidates[i].key))
    return [(candidates[i], scores[i]) for i in order]


def reciprocal_rank_fusion(
    ranked_lists: Sequence[Sequence[Passage]],
    *,
    k: int = 60,
    weights: Sequence[float] | None = None,
    limit: int | None = None,
) -> list[Passage]:
    """Fuse ranked lists: score = sum(weight / (k + rank)), rank starting at 1.

    langchain-postgres ships an RRF, but it takes SQLAlchemy rows keyed by their first
    column with a "distance" field and has no weights; this one fuses our passages
    directly, keeps the best cosine similarity seen for each chunk and returns the
    passages rescored with their fused score, best first.
    """
    weights = list(weights) if weights is not None else [1.0] * len(ranked_lists)
    scores: dict[str, float] = {}
    best: dict[str, Passage] = {}
    for weight, passages in zip(weights, ranked_lists, strict=True):
        for rank, passage in enumerate(passages, start=1):
            scores[passage.chunk_id] = scores.get(passage.chunk_id, 0.0) + weight / (k + rank)
            known = best.get(passage.chunk_id)
            if known is None or (known.similarity is None and passage.similarity is not None):
                best[passage.chunk_id] = passage
    fused = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    if limit is not None:
        fused = fused[:limit]
    return [best[chunk_id].rescored(score) for chunk_id, score in fused]
