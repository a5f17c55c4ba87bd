"""Choose the hybrid fusion on a tuning split: score combinations vs weighted RRF.

    kb eval beir ../shared/eval/scifact --split train --no-anchors --mode vector  # index once
    python bench/fusion.py ../shared/eval/scifact --split train --cache /tmp/sf-train.json
    python bench/fusion.py ../shared/eval/scifact --split train --cache /tmp/sf-train.json \
        --family agree                                           # one family, no new queries
    python bench/fusion.py ../shared/eval/msmarco --only feedback:alpha=0.6,beta=0.25,fk=5,d=40

Uses the database `kb eval beir` indexed the folder into (same settings: KB_DATA_DIR or
DATABASE_URL). For every judged query it computes, once, to the deepest candidate
depth: the dense list (exact cosine over the space's stored vectors, which is what
the app's dense search does for a space this small; see `retrieval.dense`) and the
BM25 list (`retrieval.bm25`, in the eval user's scope, as keyword search runs it),
then each passage of the union on both sides (the cosine of keyword hits, the BM25
of dense-only passages), and its cosine to the question's vector moved towards its
nearest passages for each feedback setting (`retrieval.feedback`). Every fusion of
the grid is computed from those lists, so the grid costs no more queries. Prints
nDCG@10 per fusion, best first, and the sides alone.

Tune on a training split only (SciFact's `qrels/train.tsv`); the test split and the
other sets are for reporting the choice (`--only`), never for making it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Run as a script, this folder is first on sys.path and this file would shadow the
# `retrieval` package: drop the folder before importing the project.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import numpy as np  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from chat_app.cli.context import cli_services  # noqa: E402
from db.models import DocumentChunk  # noqa: E402
from db.scoped import user_scope  # noqa: E402
from ingest.eval_corpus import index_eval_corpus  # noqa: E402
from retrieval import bm25  # noqa: E402
from retrieval.evaluation import QueryVectors, load_beir, ndcg_at_k  # noqa: E402
from retrieval.feedback import feedback_vector  # noqa: E402
from retrieval.fusion import Candidate, fuse  # noqa: E402

DEPTHS = (20, 40, 100)
# Feedback settings collected per query: (weight, passages) of `retrieval.feedback`.
FEEDBACK = [(weight, passages) for weight in (0.1, 0.25, 0.5, 1.0) for passages in (3, 5, 10)]
CACHE_VERSION = 2


def feedback_key(weight: float, passages: int) -> str:
    return f"{weight:g}/{passages}"


@dataclass(frozen=True)
class QueryLists:
    """One query's two candidate lists (doc ids, best first, each as deep as `DEPTH`)
    and both scores of every passage of their union."""

    dense: list[str]
    keyword: list[str]
    cosine: dict[str, float]
    bm25: dict[str, float]
    bm25_max: float
    # feedback_key(weight, passages) -> each passage's cosine to the moved question.
    feedback: dict[str, dict[str, float]]


def collect(
    folder: Path, split: str, depth: int
) -> tuple[dict[str, QueryLists], dict[str, dict[str, int]]]:
    dataset = load_beir(folder, split=split)
    with cli_services() as services:
        report = index_eval_corpus(
            engine=services.engine,
            embeddings=services.embeddings,
            name=dataset.name,
            corpus=dataset.corpus,
            fingerprint=dataset.fingerprint,
        )
        vectors = QueryVectors(services.embeddings, list(dataset.queries.values()))
        scope = bm25.Scope.of([report.space_id])
        with user_scope(services.engine, report.user_id) as connection:
            rows = connection.execute(
                sa.select(
                    DocumentChunk.chunk_id, DocumentChunk.source_id, DocumentChunk.embedding
                ).where(DocumentChunk.space_id == report.space_id)
            ).all()
        chunk_ids = [r[0] for r in rows]
        doc_of = {r[0]: r[1] for r in rows}
        matrix = np.asarray([np.asarray(r[2], dtype=np.float32) for r in rows])
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        index = {c: i for i, c in enumerate(chunk_ids)}
        lists: dict[str, QueryLists] = {}
        started = time.perf_counter()
        with user_scope(services.engine, report.user_id) as connection:
            for qid, text in dataset.queries.items():
                query = np.asarray(vectors.embed_query(text), dtype=np.float32)
                cosines = matrix @ (query / np.linalg.norm(query))
                top = np.argsort(-cosines, kind="stable")[:depth]
                dense = [chunk_ids[i] for i in top]
                prepared = bm25.prepare(connection, scope=scope, query=text)
                found = bm25.top(connection, prepared, scope=scope, limit=depth).matches
                keyword = [m.chunk_id for m in found]
                scores = {m.chunk_id: m.score for m in found}
                union = list(dict.fromkeys([*dense, *keyword]))
                moved = {
                    feedback_key(weight, n): matrix[[index[c] for c in union]]
                    @ feedback_vector(query, matrix[top[:n]], weight=weight).astype(np.float32)
                    for weight, n in FEEDBACK
                }
                missing = [c for c in dense if c not in scores]
                scores.update(
                    bm25.score_chunks(connection, prepared, scope=scope, chunk_ids=missing)
                )
                lists[qid] = QueryLists(
                    dense=[doc_of[c] for c in dense],
                    keyword=[doc_of[c] for c in keyword],
                    cosine={doc_of[c]: float(cosines[index[c]]) for c in {*dense, *keyword}},
                    bm25={doc_of[c]: s for c, s in scores.items()},
                    bm25_max=prepared.max_score,
                    feedback={
                        key: {doc_of[c]: float(v) for c, v in zip(union, values, strict=True)}
                        for key, values in moved.items()
                    },
                )
        print(
            f"{dataset.name} ({split}): {len(lists)} queries collected in "
            f"{time.perf_counter() - started:.0f} s",
            flush=True,
        )
    return lists, dataset.qrels


def cached(
    folder: Path, split: str, depth: int, cache: Path | None
) -> tuple[dict[str, QueryLists], dict[str, dict[str, int]]]:
    """`collect`, kept in the JSON file `cache` (when given) so that trying other
    fusions of the same lists costs no queries."""
    if cache is not None and cache.exists():
        saved = json.loads(cache.read_text())
        if (
            saved.get("version") == CACHE_VERSION
            and saved["depth"] >= depth
            and saved.get("source") == [str(folder.resolve()), split]
        ):
            lists = {qid: QueryLists(**q) for qid, q in saved["lists"].items()}
            return lists, saved["qrels"]
    lists, qrels = collect(folder, split, depth)
    if cache is not None:
        payload = {
            "version": CACHE_VERSION,
            "source": [str(folder.resolve()), split],
            "depth": depth,
            "lists": {qid: dataclasses.asdict(q) for qid, q in lists.items()},
            "qrels": qrels,
        }
        cache.write_text(json.dumps(payload))
    return lists, qrels


def per_query(
    lists: dict[str, QueryLists],
    qrels: dict[str, dict[str, int]],
    rank: Callable[[QueryLists], Sequence[str]],
) -> list[float]:
    return [ndcg_at_k(rank(q), qrels[qid], 10) for qid, q in lists.items()]


def ndcg(
    lists: dict[str, QueryLists],
    qrels: dict[str, dict[str, int]],
    rank: Callable[[QueryLists], Sequence[str]],
) -> float:
    return statistics.fmean(per_query(lists, qrels, rank))


# Query-adaptive variants of convex-max (measured for issue 16, not shipped): `agree`
# moves alpha from `alpha` (lists disjoint) down to `lo` (same top 10) with the overlap
# of the two top-10 lists; `confidence` adds `slope * (top cosine - TOP_COSINE)`, more
# dense weight when the dense side is sure of its best passage.
ADAPTIVE = {"agree": "convex-max", "confidence": "convex-max"}
TOP_COSINE = 0.62  # mean top cosine over SciFact's training questions


def query_alpha(name: str, q: QueryLists, params: dict[str, float]) -> float:
    alpha = params.get("alpha", 0.5)
    if name == "agree":
        overlap = len(set(q.dense[:10]) & set(q.keyword[:10])) / 10
        alpha -= (alpha - params["lo"]) * overlap
    elif name == "confidence":
        alpha += params["slope"] * (q.cosine[q.dense[0]] - TOP_COSINE)
    return min(0.95, max(0.05, alpha))


def fused(name: str, params: dict[str, float], depth: int) -> Callable[[QueryLists], list[str]]:
    params = dict(params)
    # pool=1: only the dense candidates are fused (BM25 re-ranks them, adds none);
    # kd: the keyword side contributes only its kd best (default: `depth`).
    dense_pool = bool(params.pop("pool", 0))
    keyword_depth = 0 if dense_pool else int(params.pop("kd", depth))
    adaptive: dict[str, float] = {k: params.pop(k) for k in ("lo", "slope") if k in params}
    # feedback: the cosines to the question moved towards its `fk` nearest passages.
    moved = feedback_key(params.pop("beta"), int(params.pop("fk"))) if name == "feedback" else None

    def rank(q: QueryLists) -> list[str]:
        dense, keyword = q.dense[:depth], q.keyword[:keyword_depth]
        candidates = [
            Candidate(
                key=doc,
                cosine=q.feedback[moved][doc] if moved else q.cosine[doc],
                bm25=q.bm25.get(doc, 0.0),
                dense_rank=dense.index(doc) + 1 if doc in dense else None,
                keyword_rank=keyword.index(doc) + 1 if doc in keyword else None,
            )
            for doc in dict.fromkeys([*dense, *keyword])
        ]
        chosen = dict(params)
        if name in ADAPTIVE:
            chosen["alpha"] = query_alpha(name, q, {**params, **adaptive})
        family = "convex-max" if name == "feedback" else ADAPTIVE.get(name, name)
        ranked = fuse(family, candidates, bm25_max=q.bm25_max, **chosen)
        return [c.key for c, _ in ranked[:10]]

    return rank


def grid() -> list[tuple[str, dict[str, float]]]:
    configs: list[tuple[str, dict[str, float]]] = []
    for weight in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0):
        for k in (10, 30, 60):
            configs.append(("rrf", {"keyword_weight": weight, "k": k}))
    alphas = [a / 20 for a in range(4, 19)]
    for alpha in alphas:
        for name in ("convex-max", "convex-minmax", "convex-z", "convex-top"):
            for pool in (0, 1):
                configs.append((name, {"alpha": alpha, "pool": pool}))
        for kd in (5, 10, 20):
            configs.append(("convex-max", {"alpha": alpha, "kd": kd}))
        for lo in [a for a in alphas if a < alpha]:
            configs.append(("agree", {"alpha": alpha, "lo": lo}))
        for slope in (0.5, 1.0, 2.0, 4.0):
            configs.append(("confidence", {"alpha": alpha, "slope": slope}))
        for weight, passages in FEEDBACK:
            configs.append(("feedback", {"alpha": alpha, "beta": weight, "fk": passages}))
    return configs


def label(name: str, params: dict[str, float], depth: int) -> str:
    shown = ",".join(f"{k}={v:g}" for k, v in params.items())
    return f"{name}:{shown},d={depth}"


def parse(text: str) -> tuple[str, dict[str, float], int]:
    name, _, rest = text.partition(":")
    params = dict(item.split("=") for item in rest.split(",") if item)
    depth = int(params.pop("d", "40"))
    return name, {k: float(v) for k, v in params.items()}, depth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--split", default="train")
    parser.add_argument("--top", type=int, default=25, help="Show this many best fusions.")
    parser.add_argument(
        "--family", default=None, help="Grid only this fusion family (e.g. convex-max)."
    )
    parser.add_argument(
        "--only", action="append", default=[], help="Score only these fusions (name:params,d=N)."
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="Keep the collected lists in this JSON file and reuse them on the next run.",
    )
    args = parser.parse_args()
    lists, qrels = cached(args.folder, args.split, max(DEPTHS), args.cache)
    print(f"dense alone    {ndcg(lists, qrels, lambda q: q.dense):.4f}")
    print(f"BM25 alone     {ndcg(lists, qrels, lambda q: q.keyword):.4f}")
    if args.only:
        chosen = [parse(text) for text in args.only]
    else:
        chosen = [(n, p, d) for d in DEPTHS for n, p in grid() if args.family in (None, n)]
    results = sorted(
        ((ndcg(lists, qrels, fused(n, p, d)), label(n, p, d)) for n, p, d in chosen),
        reverse=True,
    )
    best_of: dict[str, tuple[float, str]] = {}
    for value, name in results:
        best_of.setdefault(name.split(":")[0], (value, name))
    for value, name in results[: args.top]:
        print(f"{value:.4f}  {name}")
    print("best of each family:")
    for family, (value, name) in sorted(best_of.items(), key=lambda kv: -kv[1][0]):
        print(f"  {family:14s} {value:.4f}  {name}")
    if len(results) > 1 and not args.only:
        # The one-standard-error rule: among the configurations of the best one's
        # family and depth within one standard error (of the best's mean over the
        # queries) of it, the one giving the dense side the most weight.
        best_value, best_name = results[0]
        name, params, depth = parse(best_name)
        scores = per_query(lists, qrels, fused(name, params, depth))
        error = statistics.stdev(scores) / math.sqrt(len(scores))
        near = [
            (parse(n)[1].get("alpha", 0.0), v, n)
            for v, n in results
            if v >= best_value - error
            and parse(n)[0] == name
            and parse(n)[2] == depth
            and all(parse(n)[1].get(p, 0.0) == v for p, v in params.items() if p != "alpha")
        ]
        _, value, picked = max(near)
        print(f"one standard error of the best: {error:.4f}")
        print(f"one-SE rule (most dense weight within it): {value:.4f}  {picked}")
    assert not any(math.isnan(v) for v, _ in results)


if __name__ == "__main__":
    main()
