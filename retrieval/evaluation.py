"""Retrieval quality on BEIR-format datasets, through the same search the chat uses.

A dataset folder holds `corpus.jsonl`, `queries.jsonl` and `qrels/<split>.tsv`. Its
documents are indexed by `ingest.eval_corpus` into a dedicated, login-less user;
each judged query then goes through `Retriever.search`, the same search the chat
uses, and nDCG@10 / Recall@10 / Recall@100 are computed the way `trec_eval` does
(linear gains, relevance > 0 counts as relevant).

With `ignore_identical_ids` (BEIR's option for sets such as ArguAna, whose queries
are also documents of the corpus), a document whose id equals the query's id is
dropped from that query's ranking before scoring.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from langchain_core.embeddings import Embeddings

from db.errors import InvalidInput
from retrieval.passages import check_mode
from retrieval.retriever import Retriever

__all__ = [
    "BeirDataset",
    "QueryVectors",
    "Scores",
    "evaluate_mode",
    "load_beir",
    "ndcg_at_k",
    "recall_at_k",
    "score_run",
    "without_query_id",
]

Progress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True)
class BeirDataset:
    name: str
    corpus: dict[str, tuple[str, str]]  # doc id -> (title, text)
    queries: dict[str, str]  # judged query id -> text (only queries with a relevant doc)
    qrels: dict[str, dict[str, int]]  # query id -> doc id -> graded relevance
    fingerprint: str  # sha256 of corpus.jsonl


@dataclass(frozen=True)
class Scores:
    name: str
    ndcg_10: float
    recall_10: float
    recall_100: float
    queries: int
    ms_per_query: float


def _read_jsonl(path: Path) -> Iterable[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def load_beir(path: Path, *, split: str = "test", limit_queries: int | None = None) -> BeirDataset:
    """Read a BEIR folder; keeps the queries of `split` that have a relevant document."""
    corpus_file, queries_file = path / "corpus.jsonl", path / "queries.jsonl"
    qrels_file = path / "qrels" / f"{split}.tsv"
    for needed in (corpus_file, queries_file, qrels_file):
        if not needed.is_file():
            raise InvalidInput(
                f"{needed} is missing: {path} is not a BEIR dataset folder.",
                hint="Give a folder with corpus.jsonl, queries.jsonl and qrels/test.tsv.",
            )
    digest = hashlib.sha256()
    with corpus_file.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    corpus = {
        str(d["_id"]): (str(d.get("title") or ""), str(d.get("text") or ""))
        for d in _read_jsonl(corpus_file)
    }
    qrels: dict[str, dict[str, int]] = {}
    with qrels_file.open(encoding="utf-8") as handle:
        for row in csv.reader(handle, delimiter="\t"):
            if len(row) < 3 or not row[2].strip().lstrip("-").isdigit():
                continue  # the header line
            qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    all_queries = {str(q["_id"]): str(q["text"]) for q in _read_jsonl(queries_file)}
    queries = {
        qid: all_queries[qid]
        for qid in sorted(qrels, key=_natural)
        if qid in all_queries and any(score > 0 for score in qrels[qid].values())
    }
    if limit_queries is not None:
        queries = dict(list(queries.items())[:limit_queries])
    if not corpus or not queries:
        raise InvalidInput(
            f"{path} has no documents or no judged queries.",
            hint="Check corpus.jsonl and qrels/test.tsv.",
        )
    return BeirDataset(
        name=path.resolve().name,
        corpus=corpus,
        queries=queries,
        qrels={qid: qrels[qid] for qid in queries},
        fingerprint=digest.hexdigest(),
    )


def _natural(value: str) -> tuple[int, str]:
    return (int(value), value) if value.isdigit() else (1 << 62, value)


class QueryVectors(Embeddings):
    """The real embeddings, with the evaluation queries embedded once in one batch.

    Every mode and the exact-search anchor then use the very same query vectors, and
    the evaluation spends its time in search rather than re-embedding.
    """

    def __init__(self, embeddings: Embeddings, queries: Sequence[str]) -> None:
        self.inner = embeddings
        unique = list(dict.fromkeys(queries))
        self.vectors = dict(zip(unique, embeddings.embed_documents(unique), strict=True))

    def embed_query(self, text: str) -> list[float]:
        vector = self.vectors.get(text)
        return vector if vector is not None else self.inner.embed_query(text)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.inner.embed_documents(texts)


def ndcg_at_k(ranked: Sequence[str], judged: Mapping[str, int], k: int = 10) -> float:
    """Normalised discounted cumulative gain with linear gains (trec_eval's ndcg_cut)."""
    dcg = sum(
        max(judged.get(doc, 0), 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked[:k])
    )
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at_k(ranked: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    relevant = {doc for doc, g in judged.items() if g > 0}
    if not relevant:
        return 0.0
    return len(relevant & set(ranked[:k])) / len(relevant)


def score_run(
    name: str,
    run: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    seconds: float = 0.0,
) -> Scores:
    """Mean metrics of `run` (query id -> ranked doc ids) over the judged queries."""
    if not run:
        return Scores(name, 0.0, 0.0, 0.0, 0, 0.0)
    n = len(run)
    return Scores(
        name=name,
        ndcg_10=sum(ndcg_at_k(run[q], qrels[q], 10) for q in run) / n,
        recall_10=sum(recall_at_k(run[q], qrels[q], 10) for q in run) / n,
        recall_100=sum(recall_at_k(run[q], qrels[q], 100) for q in run) / n,
        queries=n,
        ms_per_query=seconds * 1000 / n,
    )


def without_query_id(qid: str, ranked: Sequence[str], k: int) -> list[str]:
    """BEIR's `ignore_identical_ids`: the ranking without the query's own id, cut at k."""
    return [doc for doc in ranked if doc != qid][:k]


async def evaluate_mode(
    *,
    retriever: Retriever,
    user_id: uuid.UUID,
    space_id: uuid.UUID,
    dataset: BeirDataset,
    mode: str,
    k: int = 100,
    candidates: int | None = None,
    ignore_identical_ids: bool = False,
    progress: Progress | None = None,
) -> tuple[Scores, dict[str, list[str]]]:
    """Run every judged query through `Retriever.search` in `mode`; scores and the run."""
    check_mode(mode)
    run: dict[str, list[str]] = {}
    # One more passage when the query's own document may be among them and dropped.
    wanted = k + 1 if ignore_identical_ids else k
    started = time.perf_counter()
    for i, (qid, text) in enumerate(dataset.queries.items(), start=1):
        passages = await retriever.search(
            text, user_id=user_id, spaces=[space_id], k=wanted, mode=mode, candidates=candidates
        )
        ranked = [p.source_id for p in passages]
        run[qid] = without_query_id(qid, ranked, k) if ignore_identical_ids else ranked
        if progress:
            progress(i, len(dataset.queries))
    seconds = time.perf_counter() - started
    return score_run(mode, run, dataset.qrels, seconds=seconds), run
