"""Pseudo-relevance feedback for hybrid search: the question's vector moved towards its
best dense passages before the candidates are fused (Rocchio's method on embeddings).

    q' = unit(unit(q) + weight * mean(unit(d) for the `passages` nearest d))

Hybrid search fuses each candidate's cosine to q' (instead of q) with its BM25. What
a passage shares with the question's nearest passages, not only with its wording,
then counts: on SciFact's training split this let the fusion keep more weight on the
dense side at the same quality (`bench/fusion.py`, family `feedback`; docs/ranking.md).
The passages keep their cosine to the question itself as `Passage.similarity`: that
is what "nothing relevant" and the answer's sentences are judged by, and feedback
would raise it for every passage near the others, relevant or not.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from retrieval.keyword import vector_literal

__all__ = ["feedback_cosines", "feedback_vector"]

# One statement: the mean of the feedback chunks' unit vectors, plus the question's
# unit vector divided by the weight (the same direction as q + weight * mean: cosine
# ignores length, so no scalar product is needed, which pgvector lacks), then each
# chunk's cosine to it. Without feedback rows the mean is NULL and the question's own
# direction is used.
_COSINES = sa.text(
    """
    WITH moved AS MATERIALIZED (
        SELECT CAST(:scaled AS vector) + avg(l2_normalize(f.embedding)) AS direction
        FROM document_chunks AS f
        WHERE f.chunk_id = ANY(CAST(:feedback_ids AS text[]))
          AND f.space_id = ANY(CAST(:space_ids AS uuid[]))
    )
    SELECT c.chunk_id,
           1 - (c.embedding <=> coalesce(moved.direction, CAST(:scaled AS vector))) AS cosine
    FROM unnest(CAST(:ids AS text[])) AS wanted(chunk_id)
    JOIN document_chunks AS c ON c.chunk_id = wanted.chunk_id
    CROSS JOIN moved
    WHERE c.space_id = ANY(CAST(:space_ids AS uuid[]))
    """
)


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def feedback_vector(
    query_vector: npt.ArrayLike, neighbours: Iterable[npt.ArrayLike], *, weight: float
) -> np.ndarray:
    """`q'` for `query_vector` and the embeddings of its nearest passages (unit length;
    the question's own direction when there are none)."""
    query = _unit(np.asarray(query_vector, dtype=np.float64))
    found = [_unit(np.asarray(v, dtype=np.float64)) for v in neighbours]
    if not found or weight == 0:
        return query
    return _unit(query + weight * np.mean(found, axis=0))


def feedback_cosines(
    connection: Connection,
    *,
    space_ids: Sequence[uuid.UUID],
    query_vector: Sequence[float],
    feedback_ids: Sequence[str],
    chunk_ids: Sequence[str],
    weight: float,
) -> dict[str, float]:
    """The cosine of each of `chunk_ids` to `q'` (`feedback_vector`), built from the
    chunks `feedback_ids` (the question's nearest); only chunks of `space_ids` are read.
    Empty when there is nothing to score or `weight` is 0 (no feedback)."""
    if not chunk_ids or not space_ids or weight <= 0:
        return {}
    scaled = _unit(np.asarray(query_vector, dtype=np.float64)) / weight
    rows = connection.execute(
        _COSINES,
        {
            "scaled": vector_literal(scaled.tolist()),
            "feedback_ids": list(feedback_ids),
            "ids": list(chunk_ids),
            "space_ids": list(space_ids),
        },
    )
    return {chunk_id: float(cosine) for chunk_id, cosine in rows}
