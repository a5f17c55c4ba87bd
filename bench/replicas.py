"""Read replicas: questions per second on the primary alone vs with a replica taking
the reads (same run), and the replica's lag while a 1,000-chunk document is indexed.

    python bench/replicas.py                      # 4 clients, 60 questions per series
    python bench/replicas.py --clients 8 --questions 120 --chunks 1000

Starts a primary and a streaming replica (`pg_basebackup -R`) from the embedded
wheel's binaries on loopback (as tests/test_replicas.py does), migrates the primary,
and loads the real embedding model once. Then:

1. lag: indexes one synthetic document of about `--chunks` chunks (real embeddings,
   the app's `ingest_file`) while sampling every 0.1 s the primary's WAL position and
   the replica's replay position; the lag of a sample is how long ago the primary
   held WAL the replica had not replayed yet (as `db.replicas` measures it) and the
   bytes between the two positions;
2. throughput: `--clients` concurrent clients ask `--questions` unique questions
   (retrieval + extractive answer, `AnswerChain.ainvoke`, hybrid search) with
   services on the primary only, then with the replica configured (the router's
   counts show where the reads went), then the primary only again, so a drift of
   the shared machine shows up as a difference between the first and last series.

Both servers run on this machine: a replica here adds no CPU, so the ratio measures
the routing's cost (lag checks, the read-position lookup) rather than the capacity a
replica on its own machine adds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from langchain_core.embeddings import Embeddings
from sqlalchemy.orm import Session

from chat_app.services import Services
from chat_app.settings import Settings
from db.engine import PoolConfig, make_engine, normalize_url
from db.read_positions import parse_lsn
from db.replicas import LAG_SLACK_BYTES
from db.schema import upgrade_to_head
from db.spaces import personal_space_id
from db.users import add_user
from ingest.files import ingest_file

# The loopback servers of the tests: the same binaries and start-up, no second copy.
from tests.pg_tcp import TcpServer, start_replica, start_tcp_server

DATABASE = "kb"
TOPICS = ["reactor", "turbine", "pump", "valve", "boiler", "condenser", "compressor", "filter"]


def corpus(paragraphs: int) -> str:
    """Markdown of `paragraphs` distinct ~750-character sections (one chunk each)."""
    parts = []
    for n in range(paragraphs):
        topic = TOPICS[n % len(TOPICS)]
        words = " ".join(f"{topic}{(n * 7 + i) % 211} part{i % 17}" for i in range(40))
        parts.append(
            f"## Unit {n}: the {topic} number {n}\n\nThe {topic} number {n} runs at "
            f"{300 + n % 500} kelvin and is checked every {1 + n % 9} days. {words}."
        )
    return "\n\n".join(parts)


@dataclass
class LagSample:
    at: float
    primary: int
    replayed: int


def sample_lag(primary: TcpServer, replica: TcpServer, stop: threading.Event) -> list[LagSample]:
    found: list[LagSample] = []
    with (
        psycopg.connect(primary.url(DATABASE), autocommit=True) as p,
        psycopg.connect(replica.url(DATABASE), autocommit=True) as r,
    ):
        while not stop.is_set():
            head = p.execute("SELECT pg_current_wal_flush_lsn()::text").fetchone()
            replayed = r.execute("SELECT pg_last_wal_replay_lsn()::text").fetchone()
            assert head and replayed
            found.append(LagSample(time.monotonic(), parse_lsn(head[0]), parse_lsn(replayed[0])))
            stop.wait(0.1)
    return found


def lag_seconds(samples: list[LagSample]) -> list[float]:
    """Per sample: how long ago the primary held WAL the replica had not replayed (as the
    router measures it, with its slack for a record the primary has not finished)."""
    lags = []
    for i, sample in enumerate(samples):
        older = [s for s in samples[: i + 1] if s.primary > sample.replayed + LAG_SLACK_BYTES]
        lags.append(sample.at - older[0].at if older else 0.0)
    return lags


def services_for(settings: Settings, url: str, embeddings: Embeddings | None) -> Services:
    """Services on the primary; `embeddings` shares one loaded model between them."""
    engine = make_engine(url, PoolConfig(pool_size=10, max_overflow=10))
    return Services(
        settings=settings, engine=engine, database_url=url, embeddings_override=embeddings
    )


async def ask_all(
    services: Services, user_id: uuid.UUID, questions: list[str], clients: int
) -> tuple[float, int]:
    """Questions per second with `clients` concurrent askers, and how many answers
    cited a source."""
    chain = services.answer_chain()
    await chain.ainvoke(questions[0], user_id=user_id)  # warm: pools, dense store
    queue = list(questions)
    sourced = 0

    async def client() -> None:
        nonlocal sourced
        while queue:
            answer = await chain.ainvoke(queue.pop(), user_id=user_id)
            sourced += bool(answer.sources)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return len(questions) / (time.perf_counter() - started), sourced


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--questions", type=int, default=60)
    parser.add_argument("--chunks", type=int, default=1000)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="kb-bench-replicas-"))
    root.chmod(0o755)
    primary = start_tcp_server(root / "primary", password="bench-pw")
    replica: TcpServer | None = None
    try:
        with psycopg.connect(primary.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        url = normalize_url(primary.url(DATABASE))
        setup = make_engine(url, PoolConfig(pool_size=1, max_overflow=0))
        upgrade_to_head(setup, embedding_dimension=384)
        with Session(setup, expire_on_commit=False) as session:
            user = add_user(session=session, identifier="bench", password="password123")
            session.commit()
            space = personal_space_id(session, user_id=user.id)
        setup.dispose()
        replica = start_replica(primary, root / "replica")
        replica_url = normalize_url(replica.url(DATABASE))

        settings = Settings(_env_file=None, data_dir=root / "data", llm=None)  # type: ignore[call-arg]
        if "KB_MODELS_DIR" in os.environ:
            settings = settings.model_copy(update={"models_dir": Path(os.environ["KB_MODELS_DIR"])})
        model = services_for(settings, url, None)
        t0 = time.perf_counter()
        _ = model.embeddings
        print(f"embedding model loaded in {time.perf_counter() - t0:.1f} s")

        # 1. Lag while indexing.
        document = root / "units.md"
        document.write_text(corpus(args.chunks))
        stop = threading.Event()
        result: list[list[LagSample]] = []
        sampler = threading.Thread(
            target=lambda: result.append(sample_lag(primary, replica, stop)), daemon=True
        )
        sampler.start()
        t0 = time.perf_counter()
        indexed = ingest_file(
            document,
            engine=model.engine,
            embeddings=model.embeddings,
            user_id=user.id,
            space_id=space,
            options=model.ingest_options(),
        )
        seconds = time.perf_counter() - t0
        with psycopg.connect(primary.url(DATABASE), autocommit=True) as p:
            head = p.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        assert head
        target = parse_lsn(head[0])
        with psycopg.connect(replica.url(DATABASE), autocommit=True) as r:
            while True:
                replayed = r.execute("SELECT pg_last_wal_replay_lsn()::text").fetchone()
                assert replayed
                if parse_lsn(replayed[0]) >= target:
                    break
                time.sleep(0.05)
        caught_up = time.perf_counter() - t0 - seconds
        stop.set()
        sampler.join()
        samples = result[0]
        lags = lag_seconds(samples)
        behind = [max(0, s.primary - s.replayed) for s in samples]
        print(
            f"\nindexing {indexed.added} chunks: {seconds:.1f} s ({indexed.added / seconds:.0f} "
            f"chunks/s); replica caught up {caught_up * 1000:.0f} ms after the last commit"
        )
        print(
            f"replica lag over {len(samples)} samples: p50 {statistics.median(lags) * 1000:.0f} ms,"
            f" p95 {sorted(lags)[int(len(lags) * 0.95) - 1] * 1000:.0f} ms,"
            f" max {max(lags) * 1000:.0f} ms; WAL behind: max {max(behind) / 1024:.0f} kB"
        )

        # 2. Throughput, primary vs replica vs primary.
        def questions(series: str) -> list[str]:
            return [
                f"At what temperature does the {TOPICS[n % len(TOPICS)]} number {n} run? "
                f"({series} {n})"
                for n in range(args.questions)
            ]

        rates: dict[str, float] = {}
        for label, replicas in (("primary", ""), ("replica", replica_url), ("primary again", "")):
            current = services_for(
                settings.model_copy(update={"database_replica_urls": replicas}),
                url,
                model.embeddings,
            )

            async def run(current: Services = current, label: str = label) -> tuple[float, int]:
                measured = await ask_all(current, user.id, questions(label), args.clients)
                router = current.read_router
                if router is not None:
                    print(f"  reads with the replica: {dict(router.reads)}")
                return measured

            rates[label], sourced = current.run(run())
            current.close()
            print(
                f"{label:>14}: {rates[label]:.2f} questions/s ({args.clients} clients,"
                f" {sourced}/{args.questions} answers cite a source)"
            )
        print(
            f"\nreplica / primary: {rates['replica'] / rates['primary']:.2f}"
            f" (primary drift: {rates['primary again'] / rates['primary']:.2f});"
            f" load average {os.getloadavg()[0]:.2f}"
        )
        model.close()
    finally:
        if replica is not None:
            replica.stop_if_running()
        primary.stop_if_running()


if __name__ == "__main__":
    main()
