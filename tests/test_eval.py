"""BEIR evaluation: loading, one-time indexing, metrics checked by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from db.errors import InvalidInput
from ingest.eval_corpus import IndexReport, index_eval_corpus, passage
from retrieval.eval_anchors import bm25_anchor, exact_dense_anchor
from retrieval.evaluation import (
    BeirDataset,
    QueryVectors,
    evaluate_mode,
    load_beir,
    ndcg_at_k,
    recall_at_k,
    score_run,
    without_query_id,
)
from retrieval.retriever import Retriever
from tests.fakes import HashEmbeddings

CORPUS = [
    {
        "_id": "d1",
        "title": "Volcanoes",
        "text": "Magma rises through the crust and erupts as lava.",
    },
    {"_id": "d2", "title": "Glaciers", "text": "Ice sheets carve valleys as they slowly flow."},
    {"_id": "d3", "title": "Tides", "text": "The moon's gravity pulls the oceans into tides."},
    {"_id": "d4", "title": "Deserts", "text": "Dunes migrate as wind carries sand grains."},
]
QUERIES = [
    {"_id": "1", "text": "why does lava erupt from magma"},
    {"_id": "2", "text": "what makes ocean tides"},
    {"_id": "3", "text": "a query with no relevant document judged"},
]
QRELS = "query-id\tcorpus-id\tscore\n1\td1\t1\n2\td3\t2\n2\td2\t0\n3\td4\t0\n"


def index(engine: Engine, embeddings: HashEmbeddings, dataset: BeirDataset) -> IndexReport:
    return index_eval_corpus(
        engine=engine,
        embeddings=embeddings,
        name=dataset.name,
        corpus=dataset.corpus,
        fingerprint=dataset.fingerprint,
    )


def write_beir(root: Path, corpus: list[dict[str, str]] = CORPUS) -> Path:
    folder = root / "tinybeir"
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUERIES))
    (folder / "qrels" / "test.tsv").write_text(QRELS)
    return folder


def test_ndcg_and_recall_match_a_hand_computed_case() -> None:
    judged = {"d2": 2, "d3": 1, "d4": 1, "d9": 0}
    ranked = ["d1", "d2", "d3"]
    dcg = 2 / math.log2(3) + 1 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(ranked, judged, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(ranked, judged, 10) == pytest.approx(0.56273, abs=1e-5)
    assert ndcg_at_k(["d2", "d3", "d4"], judged, 10) == pytest.approx(1.0)
    assert ndcg_at_k(["d1"], judged, 10) == 0.0
    assert recall_at_k(ranked, judged, 10) == pytest.approx(2 / 3)
    assert recall_at_k(ranked, judged, 1) == 0.0
    assert recall_at_k(["d4", "d2", "d3"], judged, 2) == pytest.approx(2 / 3)


def test_scores_are_means_over_queries() -> None:
    qrels = {"a": {"x": 1}, "b": {"y": 1}}
    scores = score_run("run", {"a": ["x"], "b": ["z", "y"]}, qrels)
    assert scores.ndcg_10 == pytest.approx((1.0 + 1 / math.log2(3)) / 2)
    assert scores.recall_10 == 1.0 and scores.queries == 2


def test_loading_keeps_only_queries_with_a_relevant_document(tmp_path: Path) -> None:
    dataset = load_beir(write_beir(tmp_path))
    assert dataset.name == "tinybeir"
    assert list(dataset.queries) == ["1", "2"]
    assert dataset.qrels["2"] == {"d3": 2, "d2": 0}
    assert (
        passage(*dataset.corpus["d1"])
        == "Volcanoes\nMagma rises through the crust and erupts as lava."
    )


def test_a_folder_without_qrels_is_refused_with_the_missing_file(tmp_path: Path) -> None:
    folder = write_beir(tmp_path)
    (folder / "qrels" / "test.tsv").unlink()
    with pytest.raises(InvalidInput, match=r"test\.tsv is missing"):
        load_beir(folder)


async def test_corpus_is_indexed_once_and_again_only_when_it_changes(
    tmp_path: Path, engine: Engine, fake_embeddings: HashEmbeddings, retriever: Retriever
) -> None:
    dataset = load_beir(write_beir(tmp_path))
    first = index(engine, fake_embeddings, dataset)
    assert (first.documents, first.embedded) == (4, 4)
    embedded_before = fake_embeddings.texts_embedded

    again = index(engine, fake_embeddings, dataset)
    assert again.embedded == 0 and again.user_id == first.user_id
    assert fake_embeddings.texts_embedded == embedded_before

    changed = load_beir(write_beir(tmp_path, CORPUS[:3]))
    report = index(engine, fake_embeddings, changed)
    assert report.embedded == 3
    found = await retriever.search("dunes sand wind", user_id=report.user_id, k=4, mode="keyword")
    assert found == []  # the dropped document is gone from the index


@pytest.mark.parametrize("mode", ["hybrid", "vector", "keyword"])
async def test_every_mode_finds_the_judged_documents_of_an_easy_dataset(
    mode: str, tmp_path: Path, engine: Engine, fake_embeddings: HashEmbeddings, read_engine: Any
) -> None:
    dataset = load_beir(write_beir(tmp_path))
    report = index(engine, fake_embeddings, dataset)
    queries = QueryVectors(fake_embeddings, list(dataset.queries.values()))
    scores, run = await evaluate_mode(
        retriever=Retriever(engine=read_engine, embeddings=queries),
        user_id=report.user_id,
        space_id=report.space_id,
        dataset=dataset,
        mode=mode,
        k=10,
    )
    assert run["1"][0] == "d1" and run["2"][0] == "d3"
    assert scores.ndcg_10 == pytest.approx(1.0) and scores.queries == 2


def test_anchors_score_the_same_dataset(
    tmp_path: Path, engine: Engine, fake_embeddings: HashEmbeddings
) -> None:
    dataset = load_beir(write_beir(tmp_path))
    report = index(engine, fake_embeddings, dataset)
    dense = exact_dense_anchor(
        engine=engine,
        embeddings=fake_embeddings,
        user_id=report.user_id,
        space_id=report.space_id,
        dataset=dataset,
        k=10,
    )
    bm25 = bm25_anchor(dataset=dataset, k=10)
    assert dense.ndcg_10 == pytest.approx(1.0)
    assert bm25.ndcg_10 == pytest.approx(1.0)
    assert bm25.recall_100 == 1.0


def test_query_vectors_are_embedded_once_in_one_batch(fake_embeddings: HashEmbeddings) -> None:
    vectors = QueryVectors(fake_embeddings, ["a b", "c d", "a b"])
    calls = fake_embeddings.calls
    assert vectors.embed_query("a b") == fake_embeddings._vector("a b")
    assert fake_embeddings.calls == calls == 1


async def test_ignoring_identical_ids_drops_the_querys_own_document(
    tmp_path: Path, engine: Engine, fake_embeddings: HashEmbeddings, read_engine: Any
) -> None:
    # ArguAna-style: query "1" is also document "1" of the corpus, and it is not judged
    # relevant to itself: BEIR's protocol removes it from the ranking.
    corpus = [*CORPUS, {"_id": "1", "title": "", "text": "why does lava erupt from magma"}]
    dataset = load_beir(write_beir(tmp_path, corpus))
    report = index(engine, fake_embeddings, dataset)
    vectors = QueryVectors(fake_embeddings, list(dataset.queries.values()))
    retriever = Retriever(engine=read_engine, embeddings=vectors)
    user, space = report.user_id, report.space_id
    _, kept = await evaluate_mode(
        retriever=retriever, user_id=user, space_id=space, dataset=dataset, mode="keyword", k=3
    )
    assert kept["1"][0] == "1"
    scores, dropped = await evaluate_mode(
        retriever=retriever,
        user_id=user,
        space_id=space,
        dataset=dataset,
        mode="keyword",
        k=3,
        ignore_identical_ids=True,
    )
    assert dropped["1"] == kept["1"][1:] and dropped["1"][0] == "d1"
    dense = exact_dense_anchor(
        engine=engine,
        embeddings=vectors,
        user_id=user,
        space_id=space,
        dataset=dataset,
        k=3,
        ignore_identical_ids=True,
    )
    bm25 = bm25_anchor(dataset=dataset, k=3, ignore_identical_ids=True)
    assert scores.ndcg_10 == pytest.approx(1.0)
    assert dense.ndcg_10 == pytest.approx(1.0) and bm25.ndcg_10 == pytest.approx(1.0)
    assert without_query_id("1", ["1", "a", "b"], 1) == ["a"]
