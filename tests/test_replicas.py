"""Read replicas on real servers: a primary and a streaming standby made by
`pg_basebackup -R`, both from the embedded binaries, on loopback.

Searches go to the replica (its own table statistics show the scans, the primary's
do not move), a person's question right after their own upload waits for the replica
to replay it or goes to the primary, a lagging replica is skipped with one warning,
and a replica stopped mid-chat costs no answer. Chat history reads follow the same
rules.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import chainlit as cl
import chainlit.data as cl_data
import psycopg
import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from chat_app.datalayer import build_data_layer
from chat_app.services import Services
from db.engine import PoolConfig, make_async_engine, make_engine, normalize_url
from db.models import User
from db.read_positions import format_lsn, parse_lsn, position_of
from db.replicas import PRIMARY, ReadRouter, ReplicaState, replica_name
from db.schema import upgrade_to_head
from db.spaces import personal_space_id
from db.users import add_user
from tests.app_fixtures import chainlit_context, make_settings, settle
from tests.fakes import HashEmbeddings
from tests.job_fixtures import run_jobs
from tests.pg_tcp import TcpServer, start_replica, start_tcp_server
from tests.prometheus_text import samples

DATABASE = "kb"
REACTOR = "# Zorblatt reactor\n\nThe Zorblatt reactor runs at 451 kelvin on tuesdays.\n"
TURBINE = "# Quandle turbine\n\nThe Quandle turbine spins at 7200 rpm during floods.\n"


class Cluster:
    """A primary with the kb schema and one streaming replica of it."""

    def __init__(self, primary: TcpServer, replica: TcpServer) -> None:
        self.primary = primary
        self.replica = replica
        self.primary_url = normalize_url(primary.url(DATABASE))
        self.replica_url = normalize_url(replica.url(DATABASE))
        self.replica_name = replica_name(self.replica_url)

    def on_replica(self, statement: str) -> Any:
        with psycopg.connect(self.replica.url(DATABASE), autocommit=True) as conn:
            row = conn.execute(statement).fetchone()
            return row[0] if row else None

    def run_on_primary(self, statement: str) -> None:
        with psycopg.connect(self.primary.url(DATABASE), autocommit=True) as conn:
            conn.execute(statement)

    def on_primary(self, statement: str) -> Any:
        with psycopg.connect(self.primary.url(DATABASE), autocommit=True) as conn:
            row = conn.execute(statement).fetchone()
            return row[0] if row else None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("replication")
    root.chmod(0o755)
    primary = start_tcp_server(root / "primary", password="primary-pw-1")
    try:
        with psycopg.connect(primary.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        engine = make_engine(primary.url(DATABASE), PoolConfig(pool_size=1, max_overflow=0))
        upgrade_to_head(engine, embedding_dimension=384)
        engine.dispose()
        replica = start_replica(primary, root / "replica")
        try:
            yield Cluster(primary, replica)
        finally:
            replica.stop_if_running()
    finally:
        primary.stop_if_running()


@pytest.fixture
def healthy(cluster: Cluster) -> Cluster:
    """The cluster with its replica running and replaying (a test may stop or pause it)."""
    if not cluster.replica.running:
        cluster.replica.start()
    cluster.on_replica("SELECT pg_wal_replay_resume()")
    return cluster


@pytest.fixture
def primary_engine(cluster: Cluster) -> Iterator[Engine]:
    engine = make_engine(cluster.primary_url, PoolConfig(pool_size=3, max_overflow=3))
    yield engine
    engine.dispose()


@pytest.fixture
async def open_services(
    healthy: Cluster, primary_engine: Engine, tmp_path: Path
) -> AsyncIterator[Callable[..., Services]]:
    """Factory: the app's services on the primary with the replica configured."""
    made: list[Services] = []

    def factory(**overrides: Any) -> Services:
        settings = make_settings(
            tmp_path,
            database_url=healthy.primary_url,
            database_replica_urls=healthy.replica_url,
            replica_check_seconds=0.05,
            **overrides,
        )
        services = Services(
            settings=settings,
            engine=primary_engine,
            database_url=healthy.primary_url,
            embeddings_override=HashEmbeddings(),
        )
        made.append(services)
        return services

    yield factory
    for services in made:
        await services.aclose()


def new_user(engine: Engine, login: str) -> tuple[User, uuid.UUID]:
    with Session(engine, expire_on_commit=False) as session:
        user = add_user(
            session=session, identifier=f"{login}-{uuid.uuid4().hex[:6]}", password="password123"
        )
        session.commit()
        return user, personal_space_id(session, user_id=user.id)


async def upload(services: Services, user: User, space: uuid.UUID, name: str, text: str) -> None:
    """An upload as the chat makes it: queued, then run by a worker (here in-process),
    which notes the uploader's write position when the job is done."""
    await asyncio.to_thread(
        services.job_queue().enqueue_file,
        user_id=user.id,
        space_id=space,
        source_id=name,
        data=text.encode(),
        origin="chat",
    )
    await run_jobs(services)


def router_of(services: Services) -> ReadRouter:
    router = services.read_router
    assert router is not None
    return router


async def replayed_for(services: Services, user_id: uuid.UUID) -> None:
    """Wait until the replica has replayed everything `user_id` wrote."""
    router = router_of(services)
    async with router.control.connect() as connection:
        position = await position_of(connection, user_id)
    assert position is not None
    state = None
    for _ in range(1200):
        state = (await router.refresh())[0]
        if state.usable and (state.replay_lsn or 0) >= position:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the replica never replayed {format_lsn(position)}: {state}")


async def wait_for_state(router: ReadRouter, check: Callable[[ReplicaState], bool]) -> ReplicaState:
    for _ in range(1200):
        state = (await router.refresh())[0]
        if check(state):
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"the replica never reached the state wanted: {router.states}")


def chunk_scans(url: str) -> int:
    """Scans of `document_chunks` this server has counted (its own statistics)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        row = conn.execute(
            "SELECT seq_scan + coalesce(idx_scan, 0) FROM pg_stat_user_tables"
            " WHERE relname = 'document_chunks'"
        ).fetchone()
        return int(row[0]) if row else 0


def test_wal_positions_parse_and_compare_like_pg_lsn() -> None:
    assert parse_lsn("0/3018AD0") == 0x3018AD0
    assert parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848
    assert parse_lsn("1/0") > parse_lsn("0/FFFFFFFF")
    assert format_lsn(parse_lsn("16/B374D848")) == "16/B374D848"
    assert replica_name("postgresql+psycopg://u:secret@db2:5433/kb") == "db2:5433/kb"


async def test_a_question_is_answered_from_the_replica(
    open_services: Callable[..., Services], healthy: Cluster, primary_engine: Engine
) -> None:
    services = open_services()
    alice, space = new_user(primary_engine, "alice")
    await upload(services, alice, space, "reactor.md", REACTOR)
    await replayed_for(services, alice.id)
    await services.aclose()  # closed sessions flush their statistics
    replica_before = chunk_scans(healthy.replica.url(DATABASE))
    primary_before = chunk_scans(healthy.primary.url(DATABASE))

    answer = await services.answer_chain().ainvoke("Zorblatt reactor kelvin?", user_id=alice.id)
    reads = dict(router_of(services).reads)
    await services.aclose()

    assert answer.sources and answer.sources[0].source_id == "reactor.md"
    assert "451 kelvin" in answer.text
    assert reads == {(healthy.replica_name, "replica", "search"): 1}
    assert chunk_scans(healthy.replica.url(DATABASE)) > replica_before
    assert chunk_scans(healthy.primary.url(DATABASE)) == primary_before


async def test_after_an_upload_the_uploader_reads_it_while_the_replica_lags(
    open_services: Callable[..., Services], healthy: Cluster, primary_engine: Engine
) -> None:
    services = open_services(replica_max_lag_seconds=600, replica_wait_seconds=0.2)
    alice, alice_space = new_user(primary_engine, "alice")
    bob, bob_space = new_user(primary_engine, "bob")
    await upload(services, bob, bob_space, "turbine.md", TURBINE)
    await replayed_for(services, bob.id)
    router = router_of(services)

    healthy.on_replica("SELECT pg_wal_replay_pause()")
    await upload(services, alice, alice_space, "reactor.md", REACTOR)
    await router.refresh()
    assert router.states[0].usable  # paused, but within the lag limit

    mine = await services.answer_chain().ainvoke("Zorblatt reactor kelvin?", user_id=alice.id)
    assert mine.sources and mine.sources[0].source_id == "reactor.md"  # the replica lacks it
    assert router.reads[(PRIMARY, "read_your_writes", "search")] == 1
    theirs = await services.answer_chain().ainvoke("Quandle turbine rpm?", user_id=bob.id)
    assert theirs.sources and theirs.sources[0].source_id == "turbine.md"
    assert router.reads[(healthy.replica_name, "replica", "search")] == 1

    healthy.on_replica("SELECT pg_wal_replay_resume()")
    await replayed_for(services, alice.id)
    again = await services.answer_chain().ainvoke("Zorblatt reactor kelvin?", user_id=alice.id)
    assert again.sources and again.sources[0].source_id == "reactor.md"
    assert router.reads[(healthy.replica_name, "replica", "search")] == 2


async def test_a_question_right_after_an_upload_waits_for_the_replica_to_replay_it(
    open_services: Callable[..., Services], healthy: Cluster, primary_engine: Engine
) -> None:
    # The wait's bound is far away: the replica catching up ends the wait, not time.
    services = open_services(replica_max_lag_seconds=600, replica_wait_seconds=600)
    alice, space = new_user(primary_engine, "alice")
    router = router_of(services)
    await router.refresh()
    healthy.on_replica("SELECT pg_wal_replay_pause()")
    await upload(services, alice, space, "reactor.md", REACTOR)

    asking = asyncio.create_task(
        services.answer_chain().ainvoke("Zorblatt reactor kelvin?", user_id=alice.id)
    )
    while router.waiting == 0:
        assert not asking.done(), asking.result()
        await asyncio.sleep(0.01)
    healthy.on_replica("SELECT pg_wal_replay_resume()")
    answer = await asking

    assert answer.sources and answer.sources[0].source_id == "reactor.md"
    assert dict(router.reads) == {(healthy.replica_name, "replica_waited", "search"): 1}


async def test_a_lagging_replica_is_skipped_with_one_warning(
    open_services: Callable[..., Services],
    healthy: Cluster,
    primary_engine: Engine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    services = open_services(replica_max_lag_seconds=0.3)
    alice, space = new_user(primary_engine, "alice")
    await upload(services, alice, space, "turbine.md", TURBINE)
    await replayed_for(services, alice.id)
    router = router_of(services)
    caplog.set_level(logging.WARNING, logger="kb.replicas")

    healthy.on_replica("SELECT pg_wal_replay_pause()")
    # WAL the replica does not replay, more than the lag measure's slack.
    healthy.run_on_primary(
        "CREATE TABLE filler AS SELECT g, repeat('x', 100) AS t FROM generate_series(1, 5000) g"
    )
    healthy.run_on_primary("DROP TABLE filler")
    state = await wait_for_state(router, lambda s: s.reason == "lagging")
    assert not state.usable and state.lag_seconds is not None and state.lag_seconds > 0.3
    assert state.lag_bytes is not None and state.lag_bytes > 0
    services.metrics.watch(services)
    scrape = samples((await asyncio.to_thread(services.metrics.render)).decode())
    replica = (("replica", healthy.replica_name),)
    assert scrape[("kb_replica_usable", replica)] == 0
    assert scrape[("kb_replica_lag_seconds", replica)] > 0.3
    assert scrape[("kb_replica_lag_bytes", replica)] > 0
    for _ in range(3):
        await router.refresh()
    answer = await services.answer_chain().ainvoke("Quandle turbine rpm?", user_id=alice.id)
    assert answer.sources  # from the primary
    assert router.reads[(PRIMARY, "no_replica", "search")] == 1
    skipped = [r for r in caplog.records if "skipped (lagging" in r.getMessage()]
    assert len(skipped) == 1, [r.getMessage() for r in caplog.records]
    scrape = samples((await asyncio.to_thread(services.metrics.render)).decode())
    key = (("kind", "search"), ("reason", "no_replica"), ("target", PRIMARY))
    assert scrape[("kb_reads_total", key)] == 1

    healthy.on_replica("SELECT pg_wal_replay_resume()")
    await wait_for_state(router, lambda s: s.usable)
    scrape = samples((await asyncio.to_thread(services.metrics.render)).decode())
    assert scrape[("kb_replica_usable", replica)] == 1
    back = [r for r in caplog.records if "is back" in r.getMessage()]
    assert len(back) == 1


async def test_a_replica_stopped_mid_chat_costs_no_answer(
    open_services: Callable[..., Services],
    healthy: Cluster,
    primary_engine: Engine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    services = open_services()
    alice, space = new_user(primary_engine, "alice")
    await upload(services, alice, space, "reactor.md", REACTOR)
    await replayed_for(services, alice.id)
    router = router_of(services)
    chain = services.answer_chain()
    first = await chain.ainvoke("Zorblatt reactor kelvin?", user_id=alice.id)
    assert first.sources
    assert router.reads[(healthy.replica_name, "replica", "search")] == 1
    caplog.set_level(logging.WARNING, logger="kb.replicas")

    healthy.replica.stop("immediate")  # as if the machine went away
    second = await chain.ainvoke("On which day does the Zorblatt reactor run?", user_id=alice.id)
    third = await chain.ainvoke("Zorblatt reactor kelvin?", user_id=alice.id)

    assert second.sources and "tuesdays" in second.text
    assert third.sources
    primary_reads = sum(n for (target, _, _), n in router.reads.items() if target == PRIMARY)
    assert primary_reads == 2
    assert not router.states[0].usable
    skipped = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 1, [r.getMessage() for r in caplog.records]


async def test_chat_history_reads_use_the_replica_once_it_has_the_persons_messages(
    open_services: Callable[..., Services],
    healthy: Cluster,
    primary_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = open_services(replica_max_lag_seconds=600, replica_wait_seconds=0.2)
    router = router_of(services)
    storage = make_async_engine(healthy.primary_url, PoolConfig(pool_size=1, max_overflow=1))
    layer = build_data_layer(healthy.primary_url, storage_engine=storage, router=router)
    monkeypatch.setattr(cl_data, "_data_layer", layer)
    monkeypatch.setattr(cl_data, "_data_layer_initialized", True)
    replica = healthy.replica_name
    alice, _ = new_user(primary_engine, "alice")
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    try:
        async with chainlit_context(alice, thread_id=first):
            await layer.update_thread(first, name="first chat", user_id=str(alice.id))
            await cl.Message(content="What is the Zorblatt reactor?", type="user_message").send()
            await settle()
        await replayed_for(services, alice.id)
        listed = await layer.get_all_user_threads(user_id=str(alice.id))
        assert [t["id"] for t in listed or []] == [first]
        assert router.reads[(replica, "replica", "history")] == 1

        healthy.on_replica("SELECT pg_wal_replay_pause()")
        async with chainlit_context(alice, thread_id=second):
            await layer.update_thread(second, name="second chat", user_id=str(alice.id))
            await cl.Message(content="And the Quandle turbine?", type="user_message").send()
            await settle()
            resumed = await layer.get_thread(second)  # as a resume right after the message
        assert resumed is not None
        assert [s["output"] for s in resumed["steps"]] == ["And the Quandle turbine?"]
        listed = await layer.get_all_user_threads(user_id=str(alice.id))
        assert {t["id"] for t in listed or []} == {first, second}
        assert router.reads[(PRIMARY, "read_your_writes", "history")] == 2

        healthy.on_replica("SELECT pg_wal_replay_resume()")
        await replayed_for(services, alice.id)
        listed = await layer.get_all_user_threads(user_id=str(alice.id))
        assert {t["id"] for t in listed or []} == {first, second}
        assert router.reads[(replica, "replica", "history")] == 2
    finally:
        await layer.close_replicas()
        await layer.engine.dispose()
        await storage.dispose()
