"""The dense list comes from langchain-postgres's PGVectorStore on per-user scoped engines."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.embeddings import Embeddings
from langchain_postgres.v2.vectorstores import PGVectorStore
from retrieval.pgvector_store import close_user_stores, ef_search_for, user_vector_store
from sqlalchemy.engine import Engine

from db.engine import PoolConfig, make_engine
from db.scoped import rls_enforced
from retrieval import pgvector_store
from retrieval.retriever import search_documents
from tests.retrieval_fixtures import add_passages

ALICE = [
    ("Kettle", "Descale the kettle every month with citric acid."),
    ("Garden", "Water the tomatoes every evening in summer."),
]
BOB = [("Bob kettle", "Descale the kettle every month with citric acid.")]


@pytest.fixture
def users(
    engine: Engine, make_user: Callable[..., Any], fake_embeddings: Embeddings
) -> tuple[uuid.UUID, uuid.UUID]:
    alice, bob = make_user("alice"), make_user("bob")
    add_passages(engine, fake_embeddings, alice.id, ALICE, prefix="alice")
    add_passages(engine, fake_embeddings, bob.id, BOB, prefix="bob")
    return alice.id, bob.id


@pytest.mark.parametrize("mode", ["vector", "hybrid"])
def test_dense_list_comes_from_pgvectorstore_with_the_user_filter(
    mode: str,
    engine: Engine,
    fake_embeddings: Embeddings,
    users: tuple[uuid.UUID, uuid.UUID],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice, _ = users
    calls: list[dict[str, Any]] = []
    search_by_vector = PGVectorStore.asimilarity_search_with_score_by_vector

    async def recording(self: PGVectorStore, *args: Any, **kwargs: Any) -> Any:
        found = await search_by_vector(self, *args, **kwargs)
        calls.append({"filter": kwargs.get("filter"), "ids": [d.id for d, _ in found]})
        return found

    # A pass-through wrapper of langchain-postgres's method: records what it returned.
    monkeypatch.setattr(PGVectorStore, "asimilarity_search_with_score_by_vector", recording)
    query = "descale the kettle"
    passages = search_documents(
        query, alice, 2, engine=engine, embeddings=fake_embeddings, mode=mode
    )
    assert len(calls) == 1
    assert calls[0]["filter"] == {"user_id": {"$eq": str(alice)}}
    assert set(calls[0]["ids"]) == {"alice-0", "alice-1"}
    assert passages[0].chunk_id == "alice-0"
    if mode == "vector":
        assert [p.chunk_id for p in passages] == calls[0]["ids"]


def test_source_filters_reach_the_store_filter(
    engine: Engine,
    fake_embeddings: Embeddings,
    users: tuple[uuid.UUID, uuid.UUID],
) -> None:
    alice, _ = users
    passages = search_documents(
        "descale the kettle",
        alice,
        5,
        engine=engine,
        embeddings=fake_embeddings,
        mode="vector",
        filters={"source_id": "Garden.md", "source_type": "file"},
    )
    assert [p.chunk_id for p in passages] == ["alice-1"]


def test_per_user_store_cannot_see_other_users_rows_even_without_a_filter(
    engine: Engine, fake_embeddings: Embeddings, users: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, bob = users
    assert rls_enforced(engine)
    vector = fake_embeddings.embed_query("descale the kettle")
    alice_store = user_vector_store(engine, alice)
    unfiltered = alice_store.similarity_search_with_score_by_vector(vector, k=10)
    assert sorted(d.id or "" for d, _ in unfiltered) == ["alice-0", "alice-1"]
    assert alice_store.get_by_ids(["bob-0"]) == []
    bob_store = user_vector_store(engine, bob)
    assert [d.id for d, _ in bob_store.similarity_search_with_score_by_vector(vector, k=10)] == [
        "bob-0"
    ]


def test_vector_scores_are_one_minus_the_store_cosine_distance(
    engine: Engine, fake_embeddings: Embeddings, users: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _ = users
    query = "descale the kettle"
    passages = search_documents(
        query, alice, 2, engine=engine, embeddings=fake_embeddings, mode="vector"
    )
    vector = fake_embeddings.embed_query(query)
    distances = dict(
        (d.id, distance)
        for d, distance in user_vector_store(engine, alice).similarity_search_with_score_by_vector(
            vector, k=2
        )
    )
    for passage in passages:
        assert passage.score == pytest.approx(1.0 - distances[passage.chunk_id])
        assert passage.similarity == passage.score
        assert passage.metadata["user_id"] == str(alice)


def test_least_recently_used_user_engine_is_closed_beyond_the_limit(
    engine: Engine, users: tuple[uuid.UUID, uuid.UUID], monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = users
    monkeypatch.setattr(pgvector_store, "MAX_USER_ENGINES", 1)
    first = user_vector_store(engine, alice)
    assert user_vector_store(engine, alice) is first
    user_vector_store(engine, bob)
    assert user_vector_store(engine, alice) is not first
    assert close_user_stores(engine) == 1


def test_disposing_the_application_engine_closes_its_user_engines(
    db_url: str, users: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, bob = users
    other = make_engine(db_url, PoolConfig(pool_size=1, max_overflow=0))
    user_vector_store(other, alice)
    user_vector_store(other, bob, ef_search=ef_search_for(300))
    other.dispose()
    assert close_user_stores(other) == 0


def test_ef_search_grows_with_the_limit_within_pgvector_bounds() -> None:
    assert [ef_search_for(n) for n in (1, 40, 50, 51, 120, 800)] == [100, 100, 100, 200, 300, 1000]
