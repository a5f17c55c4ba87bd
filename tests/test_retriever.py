"""Per-user retrieval on a small real corpus with the real embedding model."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from langchain_core.embeddings import Embeddings
from sqlalchemy.engine import Engine

from db.errors import InvalidInput
from db.scoped import user_scope
from retrieval.embeddings import load_embeddings
from retrieval.retriever import UserRetriever, search_documents
from tests.retrieval_fixtures import add_passages

pytestmark = pytest.mark.model

ALICE_FILES = [
    (
        "Returns policy",
        "Customers may send back any item within 30 days of delivery and receive a full "
        "refund to their original payment method.",
    ),
    (
        "Shipping",
        "Orders leave our warehouse within two business days; express delivery arrives "
        "the next day in most cities.",
    ),
    (
        "Spare parts",
        "The replacement filter cartridge has part number XK-4471B and fits every model "
        "sold since 2019.",
    ),
    (
        "Office",
        "The office is closed on public holidays and the cafeteria serves lunch from noon.",
    ),
    (
        "Security",
        "Badges must be worn visibly at all times inside the building.",
    ),
]
ALICE_NOTION = [
    ("Team wiki", "Our on-call rotation changes every Monday at nine in the morning."),
]
BOB_FILES = [
    (
        "Bob refunds",
        "Refunds: customers can return items within 30 days and get their money back.",
    ),
]


@pytest.fixture(scope="module")
def embeddings() -> Embeddings:
    return load_embeddings(None)


@pytest.fixture
def users(
    engine: Engine, make_user: Callable[..., Any], embeddings: Embeddings
) -> tuple[uuid.UUID, uuid.UUID]:
    alice, bob = make_user("alice"), make_user("bob")
    add_passages(engine, embeddings, alice.id, ALICE_FILES, prefix="alice-file")
    add_passages(
        engine, embeddings, alice.id, ALICE_NOTION, prefix="alice-notion", source_type="notion"
    )
    add_passages(engine, embeddings, bob.id, BOB_FILES, prefix="bob")
    return alice.id, bob.id


def search(
    engine: Engine, embeddings: Embeddings, query: str, user_id: uuid.UUID, **kwargs: Any
) -> list[str]:
    passages = search_documents(query, user_id, 3, engine=engine, embeddings=embeddings, **kwargs)
    return [p.title or "" for p in passages]


@pytest.mark.parametrize("mode", ["hybrid", "vector"])
def test_paraphrased_question_finds_the_right_passage_first(
    mode: str, engine: Engine, embeddings: Embeddings, users: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _ = users
    titles = search(
        engine, embeddings, "How can I get my money back for something I bought?", alice, mode=mode
    )
    assert titles[0] == "Returns policy"


@pytest.mark.parametrize("mode", ["hybrid", "keyword"])
def test_product_code_finds_its_passage_first(
    mode: str, engine: Engine, embeddings: Embeddings, users: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _ = users
    assert search(engine, embeddings, "XK-4471B", alice, mode=mode)[0] == "Spare parts"


def test_keyword_search_falls_back_to_any_word_when_all_words_find_nothing(
    engine: Engine, embeddings: Embeddings, users: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _ = users
    titles = search(engine, embeddings, "cafeteria zeppelin unicorn", alice, mode="keyword")
    assert titles == ["Office"]


@pytest.mark.parametrize("mode", ["hybrid", "vector", "keyword"])
def test_other_users_passages_never_appear_even_as_the_best_match(
    mode: str, engine: Engine, embeddings: Embeddings, users: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, bob = users
    query = "Refunds: customers can return items within 30 days and get their money back."
    alice_hits = search_documents(query, alice, 10, engine=engine, embeddings=embeddings, mode=mode)
    assert alice_hits and all(p.chunk_id.startswith("alice-") for p in alice_hits)
    bob_hits = search_documents(query, bob, 10, engine=engine, embeddings=embeddings, mode=mode)
    assert [p.chunk_id for p in bob_hits] == ["bob-0"]


def test_filters_restrict_to_a_source_type_or_source(
    engine: Engine, embeddings: Embeddings, users: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _ = users
    query = "when does the rotation change"
    notion = search_documents(
        query, alice, 5, engine=engine, embeddings=embeddings, filters={"source_type": "notion"}
    )
    assert {p.source_type for p in notion} == {"notion"}
    one = search_documents(
        "delivery",
        alice,
        5,
        engine=engine,
        embeddings=embeddings,
        mode="vector",
        filters={"source_id": "Shipping.md"},
    )
    assert [p.source_id for p in one] == ["Shipping.md"]


def test_vector_scores_are_cosine_similarities_best_first(
    engine: Engine, embeddings: Embeddings, users: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _ = users
    passages = search_documents(
        "badge rules in the building", alice, 6, engine=engine, embeddings=embeddings, mode="vector"
    )
    scores = [p.score for p in passages]
    assert len(passages) == 6
    assert scores == sorted(scores, reverse=True)
    assert all(-1.0 <= s <= 1.0 for s in scores)
    assert all(p.similarity == p.score for p in passages)
    assert passages[0].title == "Security" and passages[0].page == 5


def test_hybrid_passages_carry_their_cosine_similarity(
    engine: Engine, embeddings: Embeddings, users: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _ = users
    passages = search_documents(
        "XK-4471B filter cartridge", alice, 3, engine=engine, embeddings=embeddings
    )
    assert passages[0].title == "Spare parts"
    assert all(p.similarity is not None for p in passages)
    assert passages[0].similarity is not None and passages[0].similarity > 0.3
    assert passages[0].score > passages[-1].score


async def test_user_retriever_returns_documents_with_source_metadata(
    engine: Engine, embeddings: Embeddings, users: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _ = users
    retriever = UserRetriever(engine=engine, embeddings=embeddings, user_id=alice, top_k=2)
    documents = await retriever.ainvoke("how fast is express delivery")
    assert len(documents) == 2
    first = documents[0]
    assert first.metadata["title"] == "Shipping"
    assert first.metadata["source_url"].startswith("https://example.test/")
    assert first.metadata["similarity"] is not None
    keyword = UserRetriever(engine=engine, embeddings=embeddings, user_id=alice, mode="keyword")
    assert [d.metadata["title"] for d in keyword.invoke("XK-4471B")] == ["Spare parts"]


def test_bad_mode_or_filter_is_refused(
    engine: Engine, embeddings: Embeddings, users: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _ = users
    with pytest.raises(InvalidInput, match="retrieval mode 'fuzzy'"):
        search_documents("x", alice, engine=engine, embeddings=embeddings, mode="fuzzy")
    with pytest.raises(InvalidInput, match="author"):
        search_documents("x", alice, engine=engine, embeddings=embeddings, filters={"author": "me"})


def test_keyword_ranking_weighs_a_rare_word_above_common_ones(
    engine: Engine, make_user: Callable[..., Any], fake_embeddings: Embeddings
) -> None:
    carol = make_user("carol")
    common = [(f"Cells {i}", "Cells divide; cells grow; cells die.") for i in range(6)]
    rare = [("Prion note", "Abnormal PrP was found in a few samples.")]
    add_passages(engine, fake_embeddings, carol.id, common + rare, prefix="carol")
    # No chunk has every word, so any word may match; the rare one decides.
    titles = search(engine, fake_embeddings, "PrP in cells", carol.id, mode="keyword")
    assert titles[0] == "Prion note"


def test_full_text_match_can_use_the_gin_index_under_row_level_security(
    engine: Engine, make_user: Callable[..., Any], fake_embeddings: Embeddings
) -> None:
    # RLS admits only leakproof operators as index conditions; the migration marks
    # `@@` so, otherwise keyword search would read every chunk of the user.
    dave = make_user("dave")
    filler = [(f"Note {i}", f"Routine entry number {i} about nothing much.") for i in range(400)]
    add_passages(engine, fake_embeddings, dave.id, [*filler, ("Kettle", "Descale the kettle.")])
    with engine.begin() as connection:
        connection.execute(sa.text("ANALYZE document_chunks"))
    with user_scope(engine, dave.id) as connection:
        plan = connection.execute(
            sa.text(
                "EXPLAIN SELECT count(*) FROM document_chunks"
                " WHERE user_id = :u AND text_tsv @@ to_tsquery('english', 'kettle')"
            ),
            {"u": dave.id},
        ).scalars()
        assert "document_chunks_text_tsv_gin" in "\n".join(plan)


def test_keyword_search_lists_chunks_with_every_word_first_then_some_words(
    engine: Engine, make_user: Callable[..., Any], fake_embeddings: Embeddings
) -> None:
    erin = make_user("erin")
    passages = [
        ("Descaling", "How to descale the kettle every month."),
        ("Warranty", "The kettle warranty lasts two years."),
        ("Claims", "Warranty claims need the receipt."),
        ("Lunch", "Lunch is served at noon."),
    ]
    add_passages(engine, fake_embeddings, erin.id, passages, prefix="erin")
    titles = search(engine, fake_embeddings, "kettle warranty", erin.id, mode="keyword")
    assert titles[0] == "Warranty"
    assert sorted(titles[1:]) == ["Claims", "Descaling"]
