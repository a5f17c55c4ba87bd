"""Per-user retrieval on a small real corpus with the real embedding model."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.embeddings import Embeddings
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from db.errors import InvalidInput
from retrieval.embeddings import load_embeddings
from retrieval.retriever import Retriever
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


@pytest.fixture
def model_retriever(read_engine: AsyncEngine, embeddings: Embeddings) -> Retriever:
    return Retriever(engine=read_engine, embeddings=embeddings)


async def search(retriever: Retriever, query: str, user_id: uuid.UUID, **kwargs: Any) -> list[str]:
    passages = await retriever.search(query, user_id=user_id, k=3, **kwargs)
    return [p.title or "" for p in passages]


@pytest.mark.parametrize("mode", ["hybrid", "vector"])
async def test_paraphrased_question_finds_the_right_passage_first(
    mode: str, model_retriever: Retriever, users: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _ = users
    titles = await search(
        model_retriever, "How can I get my money back for something I bought?", alice, mode=mode
    )
    assert titles[0] == "Returns policy"


@pytest.mark.parametrize("mode", ["hybrid", "keyword"])
async def test_product_code_finds_its_passage_first(
    mode: str, model_retriever: Retriever, users: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _ = users
    assert (await search(model_retriever, "XK-4471B", alice, mode=mode))[0] == "Spare parts"


async def test_keyword_search_falls_back_to_any_word_when_all_words_find_nothing(
    model_retriever: Retriever, users: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _ = users
    titles = await search(model_retriever, "cafeteria zeppelin unicorn", alice, mode="keyword")
    assert titles == ["Office"]


@pytest.mark.parametrize("mode", ["hybrid", "vector", "keyword"])
async def test_other_users_passages_never_appear_even_as_the_best_match(
    mode: str, model_retriever: Retriever, users: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, bob = users
    query = "Refunds: customers can return items within 30 days and get their money back."
    alice_hits = await model_retriever.search(query, user_id=alice, k=10, mode=mode)
    assert alice_hits and all(p.chunk_id.startswith("alice-") for p in alice_hits)
    bob_hits = await model_retriever.search(query, user_id=bob, k=10, mode=mode)
    assert [p.chunk_id for p in bob_hits] == ["bob-0"]


async def test_filters_restrict_to_a_source_type_or_source(
    model_retriever: Retriever, users: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _ = users
    query = "when does the rotation change"
    notion = await model_retriever.search(
        query, user_id=alice, k=5, filters={"source_type": "notion"}
    )
    assert {p.source_type for p in notion} == {"notion"}
    one = await model_retriever.search(
        "delivery", user_id=alice, k=5, mode="vector", filters={"source_id": "Shipping.md"}
    )
    assert [p.source_id for p in one] == ["Shipping.md"]


async def test_vector_scores_are_cosine_similarities_best_first(
    model_retriever: Retriever, users: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _ = users
    passages = await model_retriever.search(
        "badge rules in the building", user_id=alice, k=6, mode="vector"
    )
    scores = [p.score for p in passages]
    assert len(passages) == 6
    assert scores == sorted(scores, reverse=True)
    assert all(-1.0 <= s <= 1.0 for s in scores)
    assert all(p.similarity == p.score for p in passages)
    assert passages[0].title == "Security" and passages[0].page == 5


async def test_hybrid_passages_carry_their_cosine_similarity(
    model_retriever: Retriever, users: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _ = users
    passages = await model_retriever.search("XK-4471B filter cartridge", user_id=alice, k=3)
    assert passages[0].title == "Spare parts"
    assert all(p.similarity is not None for p in passages)
    assert passages[0].similarity is not None and passages[0].similarity > 0.3
    assert passages[0].score > passages[-1].score


async def test_passages_carry_their_source_metadata(
    model_retriever: Retriever, users: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _ = users
    passages = await model_retriever.search("how fast is express delivery", user_id=alice, k=2)
    assert len(passages) == 2
    first = passages[0]
    assert first.title == "Shipping" and first.source_type == "file"
    assert first.source_url is not None and first.source_url.startswith("https://example.test/")
    assert first.similarity is not None
    keyword = await model_retriever.search("XK-4471B", user_id=alice, mode="keyword")
    assert [p.title for p in keyword] == ["Spare parts"]


async def test_bad_mode_or_filter_is_refused(
    model_retriever: Retriever, users: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _ = users
    with pytest.raises(InvalidInput, match="retrieval mode 'fuzzy'"):
        await model_retriever.search("x", user_id=alice, mode="fuzzy")
    with pytest.raises(InvalidInput, match="author"):
        await model_retriever.search("x", user_id=alice, filters={"author": "me"})


async def test_keyword_ranking_weighs_a_rare_word_above_common_ones(
    engine: Engine, make_user: Callable[..., Any], fake_embeddings: Embeddings, retriever: Retriever
) -> None:
    carol = make_user("carol")
    common = [(f"Cells {i}", "Cells divide; cells grow; cells die.") for i in range(6)]
    rare = [("Prion note", "Abnormal PrP was found in a few samples.")]
    add_passages(engine, fake_embeddings, carol.id, common + rare, prefix="carol")
    # No chunk has every word, so any word may match; the rare one decides.
    titles = await search(retriever, "PrP in cells", carol.id, mode="keyword")
    assert titles[0] == "Prion note"


async def test_keyword_search_lists_chunks_with_every_word_first_then_some_words(
    engine: Engine, make_user: Callable[..., Any], fake_embeddings: Embeddings, retriever: Retriever
) -> None:
    erin = make_user("erin")
    passages = [
        ("Descaling", "How to descale the kettle every month."),
        ("Warranty", "The kettle warranty lasts two years."),
        ("Claims", "Warranty claims need the receipt."),
        ("Lunch", "Lunch is served at noon."),
    ]
    add_passages(engine, fake_embeddings, erin.id, passages, prefix="erin")
    titles = await search(retriever, "kettle warranty", erin.id, mode="keyword")
    assert titles[0] == "Warranty"
    assert sorted(titles[1:]) == ["Claims", "Descaling"]
