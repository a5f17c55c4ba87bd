"""Dense search is langchain-postgres's PGVectorStore on the read engine, whose pooled
connections take the caller's scope at checkout and drop it at checkin."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from langchain_core.embeddings import Embeddings
from langchain_postgres.v2.vectorstores import PGVectorStore
from sqlalchemy.engine import Engine

from db.engine import PoolConfig
from db.scoped import ReadScope, make_read_engine, read_scope, rls_enforced
from retrieval.dense import DenseSearch, ef_search_for
from retrieval.passages import SearchFilters
from retrieval.retriever import Retriever
from retrieval.scope import SpaceSizes
from tests.conftest import personal_space
from tests.retrieval_fixtures import add_passages

ALICE = [
    ("Kettle", "Descale the kettle every month with citric acid."),
    ("Garden", "Water the tomatoes every evening in summer."),
]
BOB = [("Bob kettle", "Descale the kettle every month with citric acid.")]
_SESSION_SCOPE = sa.text(
    "SELECT current_user, current_setting('app.user_id', true),"
    " current_setting('hnsw.ef_search'), current_setting('hnsw.iterative_scan')"
)
_EXPLAIN_NEAREST = sa.text(
    "EXPLAIN SELECT chunk_id FROM document_chunks ORDER BY embedding <=> CAST(:v AS vector) LIMIT 5"
)


@pytest.fixture
def users(
    engine: Engine, make_user: Callable[..., Any], fake_embeddings: Embeddings
) -> tuple[uuid.UUID, uuid.UUID]:
    alice, bob = make_user("alice"), make_user("bob")
    add_passages(engine, fake_embeddings, alice.id, ALICE, prefix="alice")
    add_passages(engine, fake_embeddings, bob.id, BOB, prefix="bob")
    return alice.id, bob.id


@pytest.mark.parametrize("mode", ["vector", "hybrid"])
async def test_dense_list_comes_from_pgvectorstore_with_the_space_filter(
    mode: str,
    engine: Engine,
    retriever: Retriever,
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
    passages = await retriever.search("descale the kettle", user_id=alice, k=2, mode=mode)
    assert len(calls) == 1
    assert calls[0]["filter"] == {"space_id": {"$eq": str(personal_space(engine, alice))}}
    assert set(calls[0]["ids"]) == {"alice-0", "alice-1"}
    assert passages[0].chunk_id == "alice-0"
    if mode == "vector":
        assert [p.chunk_id for p in passages] == calls[0]["ids"]


async def test_source_filters_reach_the_store_filter(
    retriever: Retriever, users: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _ = users
    passages = await retriever.search(
        "descale the kettle",
        user_id=alice,
        k=5,
        mode="vector",
        filters={"source_id": "Garden.md", "source_type": "file"},
    )
    assert [p.chunk_id for p in passages] == ["alice-1"]


async def test_scoped_store_cannot_see_other_users_rows_even_without_a_filter(
    engine: Engine, retriever: Retriever, users: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, bob = users
    assert rls_enforced(engine)
    vector = retriever.embeddings.embed_query("descale the kettle")
    store = (await retriever.dense())._store
    with read_scope(ReadScope(user_id=alice)):
        unfiltered = await store.asimilarity_search_with_score_by_vector(vector, k=10)
        assert sorted(d.id or "" for d, _ in unfiltered) == ["alice-0", "alice-1"]
        assert await store.aget_by_ids(["bob-0"]) == []
    with read_scope(ReadScope(user_id=bob)):
        found = await store.asimilarity_search_with_score_by_vector(vector, k=10)
        assert [d.id for d, _ in found] == ["bob-0"]
    # No scope at all: the connection sees nobody's rows.
    assert await store.asimilarity_search_with_score_by_vector(vector, k=10) == []


async def test_a_pooled_connection_never_carries_the_previous_users_scope(
    db_url: str, users: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, bob = users
    # One connection in the pool: every checkout below reuses it.
    engine = make_read_engine(db_url, PoolConfig(pool_size=1, max_overflow=0))
    try:
        seen = []
        for scope in (ReadScope(alice, ef_search=300), ReadScope(bob), None):
            if scope is None:
                async with engine.connect() as connection:
                    seen.append(tuple((await connection.execute(_SESSION_SCOPE)).one()))
                continue
            with read_scope(scope):
                async with engine.connect() as connection:
                    seen.append(tuple((await connection.execute(_SESSION_SCOPE)).one()))
            async with engine.connect() as connection:  # a checkout after that scope
                seen.append(tuple((await connection.execute(_SESSION_SCOPE)).one()))
        assert seen == [
            ("kb_scoped", str(alice), "300", "relaxed_order"),
            ("kb_scoped", "", "100", "relaxed_order"),
            ("kb_scoped", str(bob), "100", "relaxed_order"),
            ("kb_scoped", "", "100", "relaxed_order"),
            ("kb_scoped", "", "100", "relaxed_order"),
        ]
        pool = engine.pool
        assert isinstance(pool, sa.pool.QueuePool)
        assert pool.checkedout() == 0 and pool.size() == 1
    finally:
        await engine.dispose()


async def test_vector_scores_are_one_minus_the_store_cosine_distance(
    engine: Engine, retriever: Retriever, users: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _ = users
    query = "descale the kettle"
    passages = await retriever.search(query, user_id=alice, k=2, mode="vector")
    vector = retriever.embeddings.embed_query(query)
    store = (await retriever.dense())._store
    with read_scope(ReadScope(user_id=alice)):
        found = await store.asimilarity_search_with_score_by_vector(vector, k=2)
    distances = {d.id: distance for d, distance in found}
    for passage in passages:
        assert passage.score == pytest.approx(1.0 - distances[passage.chunk_id])
        assert passage.similarity == passage.score
        assert passage.metadata["space_id"] == str(personal_space(engine, alice))
        assert passage.metadata["space_name"] == "Personal"


async def test_dense_search_alone_returns_the_nearest_first(
    read_engine: Any, fake_embeddings: Embeddings, users: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _ = users
    dense = await DenseSearch.create(read_engine)
    retriever = Retriever(engine=read_engine, embeddings=fake_embeddings)
    vector = fake_embeddings.embed_query("water the tomatoes")
    found = await dense.search(
        user_id=alice,
        scope=await retriever.scope(alice),
        query_vector=vector,
        limit=2,
        filters=SearchFilters(source_type="file"),
    )
    assert [p.chunk_id for p in found] == ["alice-1", "alice-0"]
    assert found[0].score >= found[1].score


def test_ef_search_grows_with_the_limit_within_pgvector_bounds() -> None:
    assert [ef_search_for(n) for n in (1, 40, 50, 51, 120, 800)] == [100, 100, 100, 102, 240, 1000]


async def test_an_exact_scope_turns_index_scans_off_for_that_checkout_only(
    db_url: str, users: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _ = users
    engine = make_read_engine(db_url, PoolConfig(pool_size=1, max_overflow=0))
    vector = "[" + ",".join(["0.1"] * 384) + "]"
    index_scans = sa.text("SELECT current_setting('enable_indexscan')")
    try:
        seen = []
        for exact in (True, False):
            with read_scope(ReadScope(alice, exact=exact)):
                async with engine.connect() as connection:
                    seen.append((await connection.execute(index_scans)).scalar())
                    plan = (await connection.execute(_EXPLAIN_NEAREST, {"v": vector})).scalars()
                    if exact:
                        assert "Index Scan using document_chunks_embedding_hnsw" not in "\n".join(
                            plan
                        )
        assert seen == ["off", "on"]
    finally:
        await engine.dispose()


async def test_shared_spaces_are_searched_with_their_names_and_can_be_narrowed(
    engine: Engine, retriever: Retriever, make_user: Callable[..., Any], fake_embeddings: Embeddings
) -> None:
    from sqlalchemy.orm import Session

    from db import spaces as repo

    owner, reader = make_user("owner"), make_user("reader")
    with Session(engine) as session:
        team = repo.create_space(session=session, name="Team", owner=owner, created_by=None)
        repo.add_member(session=session, space=team, user=reader, role="reader", added_by=None)
        session.commit()
        team_id = team.id
    add_passages(engine, fake_embeddings, owner.id, ALICE, prefix="team", space_id=team_id)
    add_passages(engine, fake_embeddings, reader.id, BOB, prefix="mine")

    everything = await retriever.search("descale the kettle", user_id=reader.id, k=5)
    assert {p.chunk_id for p in everything} == {"team-0", "team-1", "mine-0"}
    names = {p.chunk_id: p.metadata["space_name"] for p in everything}
    assert names["team-0"] == "Team" and names["mine-0"] == "Personal"
    narrowed = await retriever.search(
        "descale the kettle", user_id=reader.id, spaces=[team_id], k=5
    )
    assert {p.chunk_id for p in narrowed} == {"team-0", "team-1"}
    # A space the person is not a member of is ignored, not searched.
    outsider = make_user("outsider")
    assert await retriever.search("kettle", user_id=outsider.id, spaces=[team_id]) == []


async def test_a_disabled_member_finds_nothing(
    engine: Engine, retriever: Retriever, users: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _ = users
    assert await retriever.search("descale the kettle", user_id=alice, k=5)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE users SET is_active = false WHERE id = :u"), {"u": alice})
    for mode in ("vector", "keyword", "hybrid"):
        assert await retriever.search("descale the kettle", user_id=alice, k=5, mode=mode) == []


async def test_a_space_size_is_remembered_for_a_while_but_membership_is_read_every_time(
    engine: Engine,
    read_engine: Any,
    fake_embeddings: Embeddings,
    users: tuple[uuid.UUID, uuid.UUID],
) -> None:
    alice, bob = users
    now = [0.0]
    retriever = Retriever(engine=read_engine, embeddings=fake_embeddings, exact_scan_max_chunks=2)
    retriever.space_sizes = SpaceSizes(ttl=30.0, clock=lambda: now[0])
    first = await retriever.scope(alice)
    assert (first.chunks, first.small) == (2, True)
    add_passages(
        engine, fake_embeddings, alice, [("More", "Prune the roses in March.")], prefix="a2"
    )
    # The size is a plan choice: a count a few seconds old is used as it is ...
    assert (await retriever.scope(alice)).chunks == 2
    now[0] = 31.0
    # ... and counted again (up to the cap + 1) once it is older than the ttl.
    later = await retriever.scope(alice)
    assert (later.chunks, later.small) == (3, False)
    # Bob reads only his own space, whatever Alice's count says.
    assert list((await retriever.scope(bob)).spaces) == [personal_space(engine, bob)]
