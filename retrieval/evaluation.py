"""Retrieval quality on BEIR-format datasets, through the same search the chat uses.

A dataset folder holds `corpus.jsonl`, `queries.jsonl` and `qrels/<split>.tsv`. Its
documents are indexed once into a dedicated, login-less user (`eval:<name>`), one
chunk per document (title + text, as BEIR does); the corpus fingerprint stored on
that user makes later runs skip the embedding work. Each judged query then goes
through `search_documents`, and nDCG@10 / Recall@10 / Recall@100 are computed the
way `trec_eval` does (linear gains, relevance > 0 counts as relevant).
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

import sqlalchemy as sa
from langchain_core.embeddings import Embeddings
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from db.chunks import ChunkRow, insert_chunks
from db.errors import InvalidInput
from db.models import DocumentChunk, User
from db.scoped import user_scope
from db.users import add_user, get_user
from retrieval.retriever import check_mode, search_documents

__all__ = [
    "BeirDataset",
    "IndexReport",
    "QueryVectors",
    "Scores",
    "ensure_indexed",
    "eval_user_identifier",
    "evaluate_mode",
    "load_beir",
    "ndcg_at_k",
    "recall_at_k",
    "score_run",
]

SOURCE_TYPE = "beir"
Progress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True)
class BeirDataset:
    name: str
    corpus: dict[str, tuple[str, str]]  # doc id -> (title, text)
    queries: dict[str, str]  # judged query id -> text (only queries with a relevant doc)
    qrels: dict[str, dict[str, int]]  # query id -> doc id -> graded relevance
    fingerprint: str  # sha256 of corpus.jsonl

    def passage(self, doc_id: str) -> str:
        """What gets embedded: title and text, as BEIR's dense baselines do."""
        title, text = self.corpus[doc_id]
        return f"{title}\n{text}" if title else text


@dataclass(frozen=True)
class IndexReport:
    user_id: uuid.UUID
    documents: int
    embedded: int  # 0 when the corpus was already indexed
    seconds: float


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


def eval_user_identifier(name: str) -> str:
    return f"eval:{name}"


def _model_name(embeddings: Embeddings) -> str:
    return str(getattr(embeddings, "model_name", type(embeddings).__name__))


def ensure_indexed(
    *,
    engine: Engine,
    embeddings: Embeddings,
    dataset: BeirDataset,
    block_size: int = 256,
    progress: Progress | None = None,
) -> IndexReport:
    """Index the corpus into the dataset's evaluation user, unless it already is."""
    started = time.perf_counter()
    stamp = {"corpus_sha256": dataset.fingerprint, "model": _model_name(embeddings)}
    with Session(engine) as session:
        user = get_user(session=session, identifier=eval_user_identifier(dataset.name))
        if user is None:
            # No password: nobody can log in as an evaluation user.
            user = add_user(session=session, identifier=eval_user_identifier(dataset.name))
            user.is_active = False
            session.commit()
        user_id, known = user.id, dict(user.metadata_ or {}).get("eval")
    if known == {**stamp, "documents": len(dataset.corpus)} and _count(engine, user_id) == len(
        dataset.corpus
    ):
        return IndexReport(user_id, len(dataset.corpus), 0, time.perf_counter() - started)

    doc_ids = list(dataset.corpus)
    vectors: list[list[float]] = []
    # Blocks larger than the model's batch let sentence-transformers sort by length.
    for start in range(0, len(doc_ids), block_size):
        block = doc_ids[start : start + block_size]
        vectors.extend(embeddings.embed_documents([dataset.passage(d) for d in block]))
        if progress:
            progress(len(vectors), len(doc_ids))
    rows = [
        ChunkRow(
            chunk_id=f"{SOURCE_TYPE}:{dataset.name}:{doc_id}",
            user_id=user_id,
            text=dataset.corpus[doc_id][1],
            embedding=vector,
            source_type=SOURCE_TYPE,
            source_id=doc_id,
            metadata={"title": dataset.corpus[doc_id][0], "dataset": dataset.name},
        )
        for doc_id, vector in zip(doc_ids, vectors, strict=True)
    ]
    with user_scope(engine, user_id) as connection:
        connection.execute(sa.delete(DocumentChunk).where(DocumentChunk.user_id == user_id))
        insert_chunks(connection, rows)
    with Session(engine) as session:
        session.execute(
            sa.update(User)
            .where(User.id == user_id)
            .values(metadata_={"eval": {**stamp, "documents": len(rows)}})
        )
        session.commit()
    return IndexReport(user_id, len(rows), len(rows), time.perf_counter() - started)


def _count(engine: Engine, user_id: uuid.UUID) -> int:
    with user_scope(engine, user_id) as connection:
        query = sa.select(sa.func.count()).where(DocumentChunk.user_id == user_id)
        return int(connection.execute(query).scalar_one())


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


def evaluate_mode(
    *,
    engine: Engine,
    embeddings: Embeddings,
    user_id: uuid.UUID,
    dataset: BeirDataset,
    mode: str,
    k: int = 100,
    candidates: int | None = None,
    progress: Progress | None = None,
) -> tuple[Scores, dict[str, list[str]]]:
    """Run every judged query through `search_documents` in `mode`; scores and the run."""
    check_mode(mode)
    run: dict[str, list[str]] = {}
    started = time.perf_counter()
    for i, (qid, text) in enumerate(dataset.queries.items(), start=1):
        passages = search_documents(
            text,
            user_id,
            k,
            engine=engine,
            embeddings=embeddings,
            mode=mode,
            candidates=candidates,
        )
        run[qid] = [p.source_id for p in passages]
        if progress:
            progress(i, len(dataset.queries))
    seconds = time.perf_counter() - started
    return score_run(mode, run, dataset.qrels, seconds=seconds), run
