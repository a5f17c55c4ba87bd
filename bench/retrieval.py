"""Retrieval latency and filtered-HNSW recall at 100k chunks over 10 users.

    python bench/retrieval.py                 # 100k chunks, 10 users
    python bench/retrieval.py --chunks 20000  # smaller, quicker

Builds its own embedded PostgreSQL in a temporary folder, migrated to head, and
loads synthetic clustered 384-d vectors (with short texts drawn from per-cluster
vocabularies, so keyword search has work to do) by binary COPY as the owner, then
builds the HNSW index with maintenance_work_mem=1GB. Prints, measured in this run:

- p50/p95 latency of `Retriever.search` per mode with the query vector given
  ("SQL only": the dense list through langchain-postgres's `PGVectorStore` and the
  keyword list, both on the read engine whose connections are scoped at checkout,
  + Python), and with the real query embedding (all-MiniLM-L6-v2) in front;
- recall@10 of the per-user filtered HNSW search (the app's: `PGVectorStore` with
  the iterative scan set when the scoped connection is checked out) against exact
  search over the same user's vectors, and of the same query without the iterative
  scan (why the app turns it on);
- the plan of the filtered vector query, to show that the HNSW index is what answered.

Targets: recall@10 >= 0.95, SQL-only p95 < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path

# Run as a script, this folder is first on sys.path and this file would shadow the
# `retrieval` package: drop the folder before importing the project.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import numpy as np  # noqa: E402
import psycopg  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from langchain_core.embeddings import Embeddings  # noqa: E402
from pgvector.psycopg import register_vector  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402
from sqlalchemy.engine import Engine, make_url  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from db.embedded import start_embedded  # noqa: E402
from db.engine import PoolConfig, make_engine  # noqa: E402
from db.schema import upgrade_to_head  # noqa: E402
from db.scoped import make_read_engine, user_scope  # noqa: E402
from db.users import add_user  # noqa: E402
from retrieval.keyword import vector_literal  # noqa: E402
from retrieval.retriever import Retriever  # noqa: E402

DIM = 384
CLUSTERS = 500
NOISE = 0.75  # norm of the noise added to a unit cluster centre
COMMON_WORDS = [f"common{i:03d}" for i in range(300)]


class GivenVectors(Embeddings):
    """Returns the bench's precomputed query vector: latency without the model."""

    def __init__(self) -> None:
        self.vectors: dict[str, list[float]] = {}

    def embed_query(self, text: str) -> list[float]:
        return self.vectors[text]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.vectors[t] for t in texts]


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def cluster_words(cluster: int) -> list[str]:
    return [f"topic{cluster:03d}x{j:02d}" for j in range(20)]


def make_data(
    n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    centres = unit(rng.standard_normal((CLUSTERS, DIM)).astype(np.float32))
    clusters = rng.integers(0, CLUSTERS, n)
    noise = rng.standard_normal((n, DIM)).astype(np.float32) * (NOISE / np.sqrt(DIM))
    vectors = unit(centres[clusters] + noise)
    texts = []
    for c in clusters:
        words = list(rng.choice(cluster_words(int(c)), 8)) + list(rng.choice(COMMON_WORDS, 20))
        rng.shuffle(words)
        texts.append(" ".join(words))
    return centres, clusters, vectors, texts


def load(url: str, user_ids: Sequence[uuid.UUID], vectors: np.ndarray, texts: list[str]) -> None:
    """Binary COPY as the owner (COPY is refused under row-level security), then HNSW."""
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        register_vector(conn)
        conn.execute("DROP INDEX IF EXISTS document_chunks_embedding_hnsw")
        started = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY document_chunks (chunk_id, user_id, text, metadata, source_type, source_id,"
                " chunk_index, embedding) FROM STDIN WITH (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["text", "uuid", "text", "jsonb", "varchar", "text", "int4", "vector"])
            for i, (vector, text) in enumerate(zip(vectors, texts, strict=True)):
                copy.write_row(
                    (
                        f"bench-{i}",
                        user_ids[i % len(user_ids)],
                        text,
                        Jsonb({"title": f"Document {i // 10}"}),
                        "file",
                        f"doc-{i // 10}.txt",
                        i % 10,
                        vector,
                    )
                )
        copied = time.perf_counter() - started
        print(f"  COPY {len(texts):,} rows: {copied:.1f} s ({len(texts) / copied:,.0f} rows/s)")
        started = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute(
            "CREATE INDEX document_chunks_embedding_hnsw ON document_chunks"
            " USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
        )
        conn.execute("ANALYZE document_chunks")
        print(f"  HNSW build (m=16, ef_construction=64): {time.perf_counter() - started:.1f} s")


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def timed(calls: Sequence[Callable[[], Awaitable[object]]]) -> list[float]:
    for call in calls[:5]:  # warm the pool, the caches and the plans
        await call()
    times = []
    for call in calls:
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def recall_without_iterative_scan(
    engine: Engine, user_id: uuid.UUID, query: np.ndarray, k: int
) -> list[str]:
    """The same filtered query with pgvector's default (non-iterative) index scan."""
    with user_scope(engine, user_id) as connection:
        connection.execute(sa.text("SELECT set_config('hnsw.iterative_scan', 'off', true)"))
        rows = connection.execute(
            sa.text(
                "SELECT chunk_id FROM document_chunks WHERE user_id = :u"
                " ORDER BY embedding <=> CAST(:q AS vector) LIMIT :k"
            ),
            {"u": user_id, "q": vector_literal(query.tolist()), "k": k},
        )
        return [r[0] for r in rows]


def vector_plan(engine: Engine, user_id: uuid.UUID, query: np.ndarray) -> str:
    with user_scope(engine, user_id) as connection:
        connection.execute(
            sa.text("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
        )
        rows = connection.execute(
            sa.text(
                "EXPLAIN SELECT chunk_id FROM document_chunks WHERE user_id = :u"
                " ORDER BY embedding <=> CAST(:q AS vector) LIMIT 10"
            ),
            {"u": user_id, "q": vector_literal(query.tolist())},
        )
        # The query vector is inlined in the plan: shorten it.
        return "\n".join("    " + re.sub(r"'\[[^\]]*\]'", "'[...]'", r[0]) for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--queries", type=int, default=200, help="per mode, SQL only")
    parser.add_argument("--embedded-queries", type=int, default=40, help="per mode, with model")
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    total = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="kb-bench-retrieval-") as tmp:
        print(f"Starting an embedded PostgreSQL in {tmp} ...")
        server = start_embedded(Path(tmp) / "pgdata", database="bench")
        engine = make_engine(server.url, PoolConfig(pool_size=2, max_overflow=0))
        try:
            upgrade_to_head(engine, embedding_dimension=DIM)
            with Session(engine) as session:
                user_ids = [
                    add_user(session=session, identifier=f"bench{i}").id for i in range(args.users)
                ]
                session.commit()
            print(f"Generating {args.chunks:,} clustered {DIM}-d vectors for {args.users} users")
            centres, _, vectors, texts = make_data(args.chunks, rng)
            load(server.url, user_ids, vectors, texts)
            asyncio.run(run(engine, server.url, user_ids, centres, vectors, args, rng))
        finally:
            engine.dispose()
            server.stop()
    print(f"\nWhole bench: {time.perf_counter() - total:.0f} s")


async def run(
    engine: Engine,
    url: str,
    user_ids: list[uuid.UUID],
    centres: np.ndarray,
    vectors: np.ndarray,
    args: argparse.Namespace,
    rng: np.random.Generator,
) -> None:
    given = GivenVectors()
    queries: list[tuple[uuid.UUID, str, np.ndarray]] = []
    for i in range(args.queries):
        cluster = int(rng.integers(0, CLUSTERS))
        noise = rng.standard_normal(DIM).astype(np.float32) * (NOISE / np.sqrt(DIM))
        vector = unit(centres[cluster] + noise)
        text = " ".join(rng.choice(cluster_words(cluster), 2))
        given.vectors[text] = vector.tolist()
        queries.append((user_ids[i % len(user_ids)], text, vector))

    print("\nPlan of the filtered vector query:")
    print(vector_plan(engine, queries[0][0], queries[0][2]))

    read_engine = make_read_engine(url, PoolConfig(pool_size=4, max_overflow=0))
    try:
        await measure(engine, read_engine, user_ids, vectors, queries, given, args, rng)
    finally:
        await read_engine.dispose()


async def measure(
    engine: Engine,
    read_engine: AsyncEngine,
    user_ids: list[uuid.UUID],
    vectors: np.ndarray,
    queries: list[tuple[uuid.UUID, str, np.ndarray]],
    given: GivenVectors,
    args: argparse.Namespace,
    rng: np.random.Generator,
) -> None:
    k = args.k
    retrievers: dict[int, Retriever] = {}

    async def search(user_id: uuid.UUID, text: str, mode: str, emb: Embeddings) -> list[str]:
        retriever = retrievers.setdefault(id(emb), Retriever(engine=read_engine, embeddings=emb))
        found = await retriever.search(text, user_id=user_id, k=k, mode=mode)
        return [p.chunk_id for p in found]

    print(f"\nLatency of Retriever.search, k={k} (ms):")
    print(f"  {'mode':<8} {'input':<22} {'n':>4} {'p50':>8} {'p95':>8}")
    sql_p95: dict[str, float] = {}
    for mode in ("vector", "keyword", "hybrid"):
        times = await timed([partial(search, u, t, mode, given) for u, t, _ in queries])
        sql_p95[mode] = percentile(times, 0.95)
        print(
            f"  {mode:<8} {'query vector (SQL)':<22} {len(times):>4} "
            f"{percentile(times, 0.5):>8.1f} {sql_p95[mode]:>8.1f}"
        )

    from retrieval.embeddings import load_embeddings

    model = load_embeddings(None)
    words = [w for c in range(20) for w in cluster_words(c)]
    sentences = [
        f"how does {rng.choice(words)} relate to {rng.choice(words)} in practice"
        for _ in range(args.embedded_queries)
    ]
    model.embed_query("warm up")
    # The model alone, in the same run: the CPU is shared, so read the rows below
    # against this one.
    times = await timed([partial(asyncio.to_thread, model.embed_query, t) for t in sentences])
    print(
        f"  {'(none)':<8} {'embedding only':<22} {len(times):>4} "
        f"{percentile(times, 0.5):>8.1f} {percentile(times, 0.95):>8.1f}"
    )
    for mode in ("vector", "keyword", "hybrid"):
        times = await timed(
            [
                partial(search, user_ids[i % len(user_ids)], t, mode, model)
                for i, t in enumerate(sentences)
            ]
        )
        print(
            f"  {mode:<8} {'text (+ embedding)':<22} {len(times):>4} "
            f"{percentile(times, 0.5):>8.1f} {percentile(times, 0.95):>8.1f}"
        )

    owners = np.array([i % len(user_ids) for i in range(len(vectors))])
    recalls, recalls_plain = [], []
    for user_id, text, vector in queries:
        mine = np.flatnonzero(owners == user_ids.index(user_id))
        exact = {f"bench-{i}" for i in mine[np.argsort(-(vectors[mine] @ vector))[:k]]}
        recalls.append(len(exact & set(await search(user_id, text, "vector", given))) / k)
        plain = recall_without_iterative_scan(engine, user_id, vector, k)
        recalls_plain.append(len(exact & set(plain)) / k)
    print(
        f"\nRecall@{k} of the per-user filtered HNSW search vs exact search "
        f"({len(queries)} queries, {len(vectors) // len(user_ids):,} chunks per user):"
    )
    print(f"  with iterative scan (relaxed_order, as the app runs): {statistics.mean(recalls):.3f}")
    print(
        f"  without iterative scan (pgvector default):            "
        f"{statistics.mean(recalls_plain):.3f}"
    )
    print(
        "\nTargets: recall@10 >= 0.95 -> "
        f"{'met' if statistics.mean(recalls) >= 0.95 else 'NOT met'}; "
        f"SQL p95 < 50 ms -> {'met' if max(sql_p95.values()) < 50 else 'NOT met'} "
        f"(worst mode {max(sql_p95, key=lambda m: sql_p95[m])}: {max(sql_p95.values()):.1f} ms)"
    )


if __name__ == "__main__":
    main()
