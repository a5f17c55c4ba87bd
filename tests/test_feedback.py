"""Pseudo-relevance feedback of hybrid search (`retrieval.feedback`)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from db.scoped import user_scope
from retrieval.feedback import feedback_cosines, feedback_vector
from retrieval.retriever import Retriever
from tests.conftest import personal_space
from tests.fakes import MakeUser
from tests.retrieval_fixtures import add_passages

DIMENSION = 384


def padded(*head: float) -> list[float]:
    return [*head, *([0.0] * (DIMENSION - len(head)))]


class TableEmbeddings(Embeddings):
    """Chosen vectors: each known text (a passage's "title\\ntext", or a question) maps to
    its own; the geometry of a test is written out, not hashed."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.vectors[text] for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.vectors[text]


def test_feedback_moves_the_question_towards_the_mean_of_its_neighbours() -> None:
    query = [2.0, 0.0, 0.0]
    neighbours = [[0.0, 3.0, 0.0], [0.0, 0.0, 1.0]]
    moved = feedback_vector(query, neighbours, weight=0.5)
    expected = np.array([1.0, 0.25, 0.25]) / math.sqrt(1 + 2 * 0.25**2)
    assert np.allclose(moved, expected, atol=1e-12)
    assert np.allclose(feedback_vector(query, [], weight=0.5), [1.0, 0.0, 0.0])
    assert np.allclose(feedback_vector(query, neighbours, weight=0.0), [1.0, 0.0, 0.0])


def test_feedback_cosines_in_sql_equal_the_formula_and_read_only_the_spaces_given(
    engine: Engine, make_user: MakeUser
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    vectors = {
        "Mine\nalpha": padded(1.0, 0.0, 0.0),
        "Also mine\ngamma": padded(0.0, 2.0, 2.0),
        "Theirs\nbeta": padded(0.0, 0.0, 1.0),
    }
    table = TableEmbeddings(vectors)
    mine = add_passages(
        engine, table, alice.id, [("Mine", "alpha"), ("Also mine", "gamma")], prefix="alice"
    )
    [theirs] = add_passages(engine, table, bob.id, [("Theirs", "beta")], prefix="bob")
    query = padded(0.6, 0.8, 0.0)
    with user_scope(engine, alice.id) as connection:
        cosines = feedback_cosines(
            connection,
            space_ids=[personal_space(engine, alice.id)],
            query_vector=query,
            feedback_ids=[theirs, *mine],
            chunk_ids=[*mine, theirs],
            weight=0.25,
        )
        unmoved = feedback_cosines(
            connection,
            space_ids=[personal_space(engine, alice.id)],
            query_vector=query,
            feedback_ids=[theirs],
            chunk_ids=mine,
            weight=0.25,
        )
    # Bob's chunk is neither scored nor taken as feedback.
    moved = feedback_vector(
        query, [vectors["Mine\nalpha"], vectors["Also mine\ngamma"]], weight=0.25
    )
    assert sorted(cosines) == sorted(mine)
    for chunk_id, text in zip(mine, ["Mine\nalpha", "Also mine\ngamma"], strict=True):
        unit = np.asarray(vectors[text]) / np.linalg.norm(vectors[text])
        assert cosines[chunk_id] == pytest.approx(float(unit @ moved), abs=1e-6)
    # No readable feedback chunk: the cosine to the question itself.
    assert unmoved[mine[0]] == pytest.approx(0.6, abs=1e-6)


async def test_hybrid_prefers_what_the_nearest_passages_share_and_keeps_the_plain_cosine(
    engine: Engine, make_user: MakeUser, read_engine: AsyncEngine
) -> None:
    """The lone passage is the question's nearest (cosine 0.80); four alike ones follow
    (0.75) and make up most of the feedback, so q' turns towards them: hybrid ranks one
    of them first, vector search the lone one; both report the cosine to the question."""
    carol = make_user("carol")
    lone = ("Lone", "an unrelated aside")
    alike = [(f"Alike {i}", f"one of a kind {i}") for i in range(4)]
    question = "zebra quokka"  # no passage has its words: BM25 adds nothing
    vectors = {
        "Lone\nan unrelated aside": padded(0.8, -0.6, 0.0),
        **{f"{t}\n{x}": padded(0.75, 0.0, math.sqrt(1 - 0.75**2)) for t, x in alike},
        question: padded(1.0, 0.0, 0.0),
    }
    table = TableEmbeddings(vectors)
    add_passages(engine, table, carol.id, [lone, *alike], prefix="carol")
    retriever = Retriever(engine=read_engine, embeddings=table)
    vector = await retriever.search(question, user_id=carol.id, k=5, mode="vector")
    hybrid = await retriever.search(question, user_id=carol.id, k=5, mode="hybrid")
    assert vector[0].title == "Lone"
    assert (hybrid[0].title or "").startswith("Alike") and hybrid[-1].title == "Lone"
    by_chunk = {p.chunk_id: p.similarity for p in vector}
    assert {p.chunk_id: p.similarity for p in hybrid} == pytest.approx(by_chunk, abs=1e-6)
    assert by_chunk["carol-0"] == pytest.approx(0.8, abs=1e-6)
