"""`kb ask` and `kb eval beir` through the real CLI against the test database.

The CLI builds its own services from the environment, so these use the real bundled
embedding model (loaded once per process).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner, Result

from chat_app.cli import app
from db.scoped import user_scope
from db.usage import list_usage
from retrieval.embeddings import load_embeddings
from retrieval.prompts import DONT_KNOW, EXTRACTIVE_LABEL
from tests.retrieval_fixtures import add_passages
from tests.test_eval import write_beir

pytestmark = pytest.mark.model


@pytest.fixture
def kb(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args: str) -> Result:
        env = {"KB_DATABASE_URL": db_url, "DATABASE_URL": db_url, "KB_LLM": ""}
        return runner.invoke(app, list(args), env=env)

    return run


def test_ask_prints_the_extractive_answer_and_its_sources(
    kb: Callable[..., Result], engine: Engine, make_user: Callable[..., Any]
) -> None:
    alice = make_user("alice")
    add_passages(
        engine,
        load_embeddings(None),
        alice.id,
        [
            ("Returns policy", "Customers may send back any item within 30 days for a refund."),
            ("Office", "The cafeteria serves lunch from noon until two."),
        ],
    )
    result = kb("ask", "How do I get my money back?", "--user", "alice", "--k", "2")
    assert result.exit_code == 0, result.output
    assert EXTRACTIVE_LABEL in " ".join(result.stdout.split())
    assert "within 30 days for a refund" in result.stdout
    assert "Sources" in result.stdout and "Returns policy" in result.stdout
    with user_scope(engine, alice.id) as connection:
        (row,) = list_usage(connection=connection, user_id=alice.id)
    assert (row.action, row.mode, row.k, row.model) == ("ask", "hybrid", 2, None)


def test_ask_about_nothing_indexed_says_it_does_not_know(
    kb: Callable[..., Result], make_user: Callable[..., Any]
) -> None:
    make_user("bob")
    result = kb("ask", "What is the warranty?", "--user", "bob", "--mode", "vector")
    assert result.exit_code == 0, result.output
    assert DONT_KNOW in result.stdout and "Sources" not in result.stdout


def test_ask_for_an_unknown_mode_fails_with_the_choices(
    kb: Callable[..., Result], make_user: Callable[..., Any]
) -> None:
    make_user("bob")
    result = kb("ask", "anything", "--user", "bob", "--mode", "fuzzy")
    assert result.exit_code != 0
    assert "hybrid, vector, keyword" in str(result.exception)


def test_eval_beir_indexes_once_and_prints_every_mode_and_anchor(
    kb: Callable[..., Result], tmp_path: Path
) -> None:
    folder = write_beir(tmp_path)
    first = kb("eval", "beir", str(folder), "--k", "10")
    assert first.exit_code == 0, first.output
    assert "Indexed 4 documents" in first.stdout
    for row in ("hybrid", "vector", "keyword", "exact dense", "BM25"):
        assert row in first.stdout
    assert "nDCG@10" in first.stdout
    again = kb("eval", "beir", str(folder), "--mode", "keyword", "--no-anchors")
    assert again.exit_code == 0, again.output
    assert "already indexed" in again.stdout
    assert "exact dense" not in again.stdout


def test_eval_beir_writes_its_table_as_json(kb: Callable[..., Result], tmp_path: Path) -> None:
    folder = write_beir(tmp_path)
    out = tmp_path / "run.json"
    result = kb(
        "eval", "beir", str(folder), "--k", "10", "--json", str(out), "--ignore-identical-ids"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert (report["dataset"], report["split"], report["queries"], report["k"]) == (
        "tinybeir",
        "test",
        2,
        10,
    )
    assert report["ignore_identical_ids"] is True
    names = [row["name"] for row in report["results"]]
    assert names == ["hybrid", "vector", "keyword", "exact dense", "BM25 (bm25s)"]
    assert all(0.0 <= row["ndcg_10"] <= 1.0 for row in report["results"])


def test_eval_qa_scores_the_first_and_any_quote_against_the_gold_answers(
    kb: Callable[..., Result], engine: Engine, make_user: Callable[..., Any], tmp_path: Path
) -> None:
    alice = make_user("alice")
    add_passages(
        engine,
        load_embeddings(None),
        alice.id,
        [
            ("Returns policy", "Customers may send back any item within 30 days for a refund."),
            # Ingested by a path: the question names the file alone.
            ("docs/Office", "The cafeteria serves lunch from noon until two o'clock."),
        ],
    )
    questions = tmp_path / "qa.jsonl"
    lines = [
        {
            "id": "a",
            "question": "How many days do customers have to send an item back?",
            "answer": "30 days",
            "doc": "Returns policy.md",
        },
        {
            "id": "b",
            "question": "When does the cafeteria serve lunch?",
            "answers": ["from noon until two"],
            "doc": "Office.md",
        },
        {
            "id": "c",
            "question": "Who won the chess tournament?",
            "answer": "Magnus",
            "doc": "Chess.md",
        },
    ]
    questions.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    result = kb("eval", "qa", str(questions), "--user", "alice")
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "Not ingested for alice: Chess.md (run" in out
    assert "gold answer in the first quote: 67% (2/3)" in out
    assert "in any quote: 67% (2/3)" in out and "mean latency" in out
