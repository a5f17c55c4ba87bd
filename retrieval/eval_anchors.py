"""Reference points measured next to our modes in the same run.

- exact dense search: brute-force cosine over every stored vector of the evaluation
  user (no index), with the same query vectors, so the gap to `vector` mode is what
  the HNSW index and the SQL cost;
- BM25 (bm25s, English stop words and Snowball stemming): the classic keyword
  baseline that BEIR publishes, computed here on the same corpus.
"""

from __future__ import annotations

import time
import uuid

import numpy as np
import sqlalchemy as sa
from langchain_core.embeddings import Embeddings
from sqlalchemy.engine import Engine

from db.errors import KbError
from db.models import DocumentChunk
from db.scoped import user_scope
from retrieval.evaluation import BeirDataset, Scores, score_run, without_query_id

__all__ = ["bm25_anchor", "exact_dense_anchor"]


def exact_dense_anchor(
    *,
    engine: Engine,
    embeddings: Embeddings,
    user_id: uuid.UUID,
    space_id: uuid.UUID,
    dataset: BeirDataset,
    k: int,
    ignore_identical_ids: bool = False,
) -> Scores:
    """Brute-force cosine search over the space's stored vectors (they are normalised)."""
    with user_scope(engine, user_id) as connection:
        rows = connection.execute(
            sa.select(DocumentChunk.source_id, DocumentChunk.embedding).where(
                DocumentChunk.space_id == space_id
            )
        ).all()
    doc_ids = [r[0] for r in rows]
    matrix = np.asarray([np.asarray(r[1], dtype=np.float32) for r in rows])
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    started = time.perf_counter()
    run: dict[str, list[str]] = {}
    for qid, text in dataset.queries.items():
        query = np.asarray(embeddings.embed_query(text), dtype=np.float32)
        scores = matrix @ (query / np.linalg.norm(query))
        top = np.argsort(-scores, kind="stable")[: k + 1]
        ranked = [doc_ids[i] for i in top]
        run[qid] = without_query_id(qid, ranked, k) if ignore_identical_ids else ranked[:k]
    return score_run("exact dense", run, dataset.qrels, seconds=time.perf_counter() - started)


def bm25_anchor(*, dataset: BeirDataset, k: int, ignore_identical_ids: bool = False) -> Scores:
    """BM25 over title + text with bm25s (Lucene's scoring variant)."""
    try:
        import bm25s
        import Stemmer
    except ImportError:
        raise KbError(
            "The BM25 anchor needs the packages bm25s and PyStemmer.",
            hint="pip install 'kb[test]' (or pass --no-anchors).",
        ) from None
    stemmer = Stemmer.Stemmer("english")
    doc_ids = list(dataset.corpus)
    texts = [f"{t} {x}" for t, x in (dataset.corpus[d] for d in doc_ids)]
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False),
        show_progress=False,
    )
    started = time.perf_counter()
    qids = list(dataset.queries)
    tokens = bm25s.tokenize(
        [dataset.queries[q] for q in qids], stopwords="en", stemmer=stemmer, show_progress=False
    )
    results, _ = retriever.retrieve(tokens, k=min(k + 1, len(doc_ids)), show_progress=False)
    run = {}
    for qid, row in zip(qids, results, strict=True):
        ranked = [doc_ids[int(i)] for i in row]
        run[qid] = without_query_id(qid, ranked, k) if ignore_identical_ids else ranked[:k]
    return score_run("BM25 (bm25s)", run, dataset.qrels, seconds=time.perf_counter() - started)
