"""Hybrid fusion families on hand-computed cases."""

from __future__ import annotations

import pytest

from retrieval.fusion import Candidate, fuse

# "a": best cosine, no keyword word; "b": best BM25, weak cosine; "c": good on both.
CANDIDATES = [
    Candidate("a", cosine=0.80, bm25=0.0, dense_rank=1, keyword_rank=None),
    Candidate("b", cosine=0.40, bm25=9.0, dense_rank=None, keyword_rank=1),
    Candidate("c", cosine=0.70, bm25=6.0, dense_rank=2, keyword_rank=2),
]


def keys(name: str, **params: float) -> list[str]:
    return [c.key for c, _ in fuse(name, CANDIDATES, **params)]


def test_reciprocal_rank_fusion_adds_weighted_reciprocal_ranks() -> None:
    ranked = fuse("rrf", CANDIDATES, k=60, keyword_weight=0.5)
    scores = {c.key: s for c, s in ranked}
    assert scores["c"] == pytest.approx(1 / 62 + 0.5 / 62)
    assert scores["a"] == pytest.approx(1 / 61) and scores["b"] == pytest.approx(0.5 / 61)
    assert [c.key for c, _ in ranked] == ["c", "a", "b"]


def test_minmax_combination_maps_each_side_to_0_1_over_the_candidates() -> None:
    ranked = dict((c.key, s) for c, s in fuse("convex-minmax", CANDIDATES, alpha=0.5))
    # cosine 0.4..0.8 and BM25 0..9 both become 0..1.
    assert ranked["a"] == pytest.approx(0.5 * 1.0 + 0.5 * 0.0)
    assert ranked["b"] == pytest.approx(0.5 * 0.0 + 0.5 * 1.0)
    assert ranked["c"] == pytest.approx(0.5 * 0.75 + 0.5 * 6 / 9)
    assert keys("convex-minmax", alpha=0.5)[0] == "c"


def test_top_combination_divides_each_side_by_its_best_candidate() -> None:
    ranked = dict((c.key, s) for c, s in fuse("convex-top", CANDIDATES, alpha=0.5))
    # cosine / 0.8 and BM25 / 9: the floor of each side stays 0.
    assert ranked["a"] == pytest.approx(0.5 * 1.0 + 0.5 * 0.0)
    assert ranked["b"] == pytest.approx(0.5 * 0.4 / 0.8 + 0.5 * 1.0)
    assert ranked["c"] == pytest.approx(0.5 * 0.7 / 0.8 + 0.5 * 6 / 9)
    assert keys("convex-top", alpha=0.5)[0] == "c"


def test_alpha_moves_the_ranking_between_the_two_sides() -> None:
    assert keys("convex-max", alpha=1.0, bm25_max=10.0)[0] == "a"
    assert keys("convex-max", alpha=0.0, bm25_max=10.0)[0] == "b"
    assert keys("convex-z", alpha=1.0)[0] == "a" and keys("convex-z", alpha=0.0)[0] == "b"


def test_an_unknown_fusion_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown fusion"):
        fuse("borda", CANDIDATES)
