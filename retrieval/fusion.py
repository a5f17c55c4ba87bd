"""Reciprocal rank fusion of ranked passage lists (hybrid search)."""

from __future__ import annotations

from collections.abc import Sequence

from retrieval.passages import Passage

__all__ = ["reciprocal_rank_fusion"]


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
