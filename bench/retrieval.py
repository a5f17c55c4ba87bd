"""Retrieval latency and filtered-HNSW recall: per-user and shared-space scenarios.

    python bench/retrieval.py                               # 100k chunks, 10 users
    python bench/retrieval.py --chunks 20000                # smaller, quicker
    python bench/retrieval.py --scenario spaces             # 1,000 users, 300 spaces, 500k chunks

Builds its own embedded PostgreSQL in a temporary folder, migrated to head, and
loads synthetic clustered 384-d vectors (with short texts drawn from per-cluster
vocabularies, so keyword search has work to do) by binary COPY as the owner, then
builds the HNSW index with maintenance_work_mem=1GB.

Scenarios:
- `users`: every chunk in one of N users' personal spaces (round robin);
- `spaces`: N users (default 1,000) each with a personal space and membership of 2-5 of
  S shared spaces (default 300); shared spaces hold most chunks, with sizes spread
  Zipf-like, so a user's readable set is a small but not tiny share of the table.

Prints, measured in this run:
- p50/p95 latency of `Retriever.search` per mode with the query vector given ("SQL
  only": readable-scope resolution, the dense list through langchain-postgres's
  `PGVectorStore` and the keyword list, on the read engine whose connections are
  scoped at checkout, + Python), and (users scenario) with the real query embedding
  (all-MiniLM-L6-v2) in front;
- recall@10 of the dense search against exact search over the same readable set,
  and of the same query without pgvector's iterative scan (why the app turns it on);
- before/after: the same measurements with every search on the filtered HNSW graph
  (`--exact-max 0`, the design before small readable sets were scanned exactly) next
  to the app's default;
- keyword before/after (issue 16): p50/p95 of the keyword SQL (a scoped connection,
  the readable spaces given) for 3 and 10 common words and a pasted 150-word
  paragraph, the search before BM25 (`bench/legacy_keyword.py`: tf taken as 1, df
  counted per query, every matching chunk ranked, on the whole table's GIN index that
  the bench builds back for it) next to the BM25 search (on the per-space index of
  migration 0008); and hybrid `Retriever.search` (SQL only) before (dense + legacy
  keyword, RRF) and after.

Targets: recall@10 >= 0.95, hybrid SQL p95 < 50 ms; keyword SQL p95 < 50 ms for 3
and 10 common words and < 500 ms for a 150-word paragraph (issue 16, at 1M chunks).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType

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

from db.embedded import start_embedded  # noqa: E402
from db.engine import PoolConfig, make_engine  # noqa: E402
from db.schema import upgrade_to_head  # noqa: E402
from db.scoped import make_read_engine, user_scope  # noqa: E402
from retrieval.keyword import keyword_search, vector_literal  # noqa: E402
from retrieval.retriever import EXACT_SCAN_MAX_CHUNKS, Retriever  # noqa: E402
from retrieval.scope import SearchScope  # noqa: E402

DIM = 384
CLUSTERS = 500
NOISE = 0.75  # norm of the noise added to a unit cluster centre
COMMON_WORDS = [f"common{i:03d}" for i in range(300)]
CHUNKS_PER_DOCUMENT = 10
# The index the keyword search before BM25 used (migrations 0001-0007).
LEGACY_INDEX = "bench_legacy_text_tsv_gin"
MODES = ("vector", "keyword", "hybrid")


class GivenVectors(Embeddings):
    """Returns the bench's precomputed query vector: latency without the model."""

    def __init__(self) -> None:
        self.vectors: dict[str, list[float]] = {}

    def embed_query(self, text: str) -> list[float]:
        return self.vectors[text]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.vectors[t] for t in texts]


@dataclass(frozen=True)
class World:
    """Who can read what: users, spaces, and the space of every chunk (by row)."""

    user_ids: list[uuid.UUID]
    space_ids: list[uuid.UUID]
    readable: dict[uuid.UUID, list[int]]  # user -> indices into space_ids
    chunk_space: np.ndarray  # chunk row -> index into space_ids


@dataclass(frozen=True)
class Query:
    user_id: uuid.UUID
    text: str
    vector: np.ndarray
    readable_rows: np.ndarray  # chunk rows the user can read


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


def make_world(
    conn: psycopg.Connection, args: argparse.Namespace, rng: np.random.Generator
) -> World:
    """Users with personal spaces (and, for `spaces`, shared spaces and memberships),
    written by SQL as the owner; chunks assigned to spaces."""
    n = args.chunks
    users = [uuid.uuid4() for _ in range(args.users)]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO users (id, identifier, metadata) VALUES (%s, %s, '{}')",
            [(u, f"bench{i}") for i, u in enumerate(users)],
        )
        cur.execute(
            "INSERT INTO spaces (name, kind, personal_of) SELECT 'Personal', 'personal', id"
            " FROM users RETURNING personal_of, id"
        )
        personal: dict[uuid.UUID, uuid.UUID] = dict(cur.fetchall())
        cur.execute(
            "INSERT INTO space_members (space_id, user_id, role)"
            " SELECT id, personal_of, 'owner' FROM spaces WHERE kind = 'personal'"
        )
    space_ids = [personal[u] for u in users]
    readable = {u: [i] for i, u in enumerate(users)}
    documents = -(-n // CHUNKS_PER_DOCUMENT)
    if args.scenario == "users":
        return World(
            users, space_ids, readable, _layout(np.arange(documents) % len(users), n, args)
        )

    with conn.cursor() as cur:
        shared = []
        for s in range(args.spaces):
            cur.execute(
                "INSERT INTO spaces (name, kind) VALUES (%s, 'shared') RETURNING id", (f"team{s}",)
            )
            row = cur.fetchone()
            assert row is not None
            shared.append(row[0])
        members = []
        for user in users:
            for s in rng.choice(len(shared), int(rng.integers(2, 6)), replace=False):
                members.append((shared[int(s)], user, "reader"))
                readable[user].append(len(users) + int(s))
        cur.executemany(
            "INSERT INTO space_members (space_id, user_id, role) VALUES (%s, %s, %s)", members
        )
    space_ids += shared
    # 20% of the chunks in personal spaces, 80% in shared ones with Zipf-like sizes.
    weights = 1.0 / np.arange(1, len(shared) + 1) ** 0.6
    rng.shuffle(weights)
    in_personal = rng.random(documents) < 0.2
    document_space = np.where(
        in_personal,
        rng.integers(0, len(users), documents),
        len(users) + rng.choice(len(shared), documents, p=weights / weights.sum()),
    )
    return World(users, space_ids, readable, _layout(document_space, n, args))


def _layout(document_space: np.ndarray, n: int, args: argparse.Namespace) -> np.ndarray:
    """The space of every chunk row, in the order rows are written.

    `documents`: a document's chunks are written together into its space, as
    ingestion does (one transaction per file). `scattered`: the same chunks in a
    random order, so no two rows of a space share a page (the worst case).
    """
    chunk_space = np.repeat(document_space, CHUNKS_PER_DOCUMENT)[:n]
    if args.layout == "scattered":
        chunk_space = np.random.default_rng(11).permutation(chunk_space)
    return chunk_space


def load(conn: psycopg.Connection, world: World, vectors: np.ndarray, texts: list[str]) -> None:
    """Binary COPY as the owner (COPY is refused under row-level security), then HNSW."""
    register_vector(conn)
    conn.execute("DROP INDEX IF EXISTS document_chunks_embedding_hnsw")
    started = time.perf_counter()
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY document_chunks (chunk_id, space_id, text, metadata, source_type, source_id,"
            " chunk_index, embedding) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy,
    ):
        copy.set_types(["text", "uuid", "text", "jsonb", "varchar", "text", "int4", "vector"])
        for i, (vector, text) in enumerate(zip(vectors, texts, strict=True)):
            copy.write_row(
                (
                    f"bench-{i}",
                    world.space_ids[int(world.chunk_space[i])],
                    text,
                    Jsonb({"title": f"Document {i // CHUNKS_PER_DOCUMENT}"}),
                    "file",
                    f"doc-{i // CHUNKS_PER_DOCUMENT}.txt",
                    i % CHUNKS_PER_DOCUMENT,
                    vector,
                )
            )
    copied = time.perf_counter() - started
    print(f"  COPY {len(texts):,} rows: {copied:.1f} s ({len(texts) / copied:,.0f} rows/s)")
    started = time.perf_counter()
    conn.execute("SET maintenance_work_mem = '1GB'")
    conn.execute("SET max_parallel_maintenance_workers = 2")
    conn.execute(
        "CREATE INDEX document_chunks_embedding_hnsw ON document_chunks"
        " USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
    )
    # What autovacuum does soon after a load: statistics, and the visibility map
    # that lets the readable-set count read the space index alone.
    conn.execute("VACUUM ANALYZE")
    built = time.perf_counter() - started
    print(f"  HNSW build (m=16, ef_construction=64) + VACUUM ANALYZE: {built:.1f} s")


def make_queries(
    world: World,
    vectors: np.ndarray,
    clusters: np.ndarray,
    centres: np.ndarray,
    count: int,
    rng: np.random.Generator,
    given: GivenVectors,
) -> list[Query]:
    """Questions near a topic the asking user can read (so there is something to find)."""
    queries = []
    for i in range(count):
        user = world.user_ids[i % len(world.user_ids)]
        rows = np.flatnonzero(np.isin(world.chunk_space, world.readable[user]))
        if len(rows) == 0:
            continue
        cluster = int(clusters[int(rng.choice(rows))])
        noise = rng.standard_normal(DIM).astype(np.float32) * (NOISE / np.sqrt(DIM))
        vector = unit(centres[cluster] + noise)
        text = " ".join(rng.choice(cluster_words(cluster), 2)) + f" q{i}"
        given.vectors[text] = vector.tolist()
        queries.append(Query(user, text, vector, rows))
    return queries


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


def without_iterative_scan(
    engine: Engine, query: Query, space_ids: list[uuid.UUID], k: int = 10
) -> list[str]:
    """The same filtered query with pgvector's default (non-iterative) index scan."""
    with user_scope(engine, query.user_id) as connection:
        connection.execute(sa.text("SELECT set_config('hnsw.iterative_scan', 'off', true)"))
        rows = connection.execute(
            sa.text(
                "SELECT chunk_id FROM document_chunks WHERE space_id = ANY(:s)"
                " ORDER BY embedding <=> CAST(:q AS vector) LIMIT :k"
            ),
            {"s": space_ids, "q": vector_literal(query.vector.tolist()), "k": k},
        )
        return [r[0] for r in rows]


def vector_plan(engine: Engine, query: Query, space_ids: list[uuid.UUID]) -> str:
    with user_scope(engine, query.user_id) as connection:
        connection.execute(
            sa.text("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
        )
        rows = connection.execute(
            sa.text(
                "EXPLAIN SELECT chunk_id FROM document_chunks WHERE space_id = ANY(:s)"
                " ORDER BY embedding <=> CAST(:q AS vector) LIMIT 10"
            ),
            {"s": space_ids, "q": vector_literal(query.vector.tolist())},
        )
        # The query vector is inlined in the plan: shorten it.
        return "\n".join("    " + re.sub(r"'\[[^\]]*\]'", "'[...]'", r[0]) for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", choices=("users", "spaces"), default="users")
    parser.add_argument("--chunks", type=int, default=None, help="default 100k / 500k")
    parser.add_argument("--users", type=int, default=None, help="default 10 / 1,000")
    parser.add_argument("--spaces", type=int, default=300, help="shared spaces (spaces scenario)")
    parser.add_argument("--queries", type=int, default=200, help="per mode, SQL only")
    parser.add_argument("--embedded-queries", type=int, default=40, help="per mode, with model")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--layout",
        choices=("documents", "scattered"),
        default="documents",
        help="rows of a document written together (as ingestion does) or scattered",
    )
    parser.add_argument(
        "--exact-max",
        type=int,
        default=EXACT_SCAN_MAX_CHUNKS,
        help="readable sets up to this many chunks are scanned exactly (the app's default)",
    )
    args = parser.parse_args()
    spaces = args.scenario == "spaces"
    args.chunks = args.chunks or (500_000 if spaces else 100_000)
    args.users = args.users or (1_000 if spaces else 10)
    rng = np.random.default_rng(7)
    total = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="kb-bench-retrieval-") as tmp:
        print(f"Starting an embedded PostgreSQL in {tmp} ...")
        server = start_embedded(Path(tmp) / "pgdata", database="bench")
        engine = make_engine(server.url, PoolConfig(pool_size=2, max_overflow=0))
        try:
            upgrade_to_head(engine, embedding_dimension=DIM)
            conninfo = make_url(server.url).set(drivername="postgresql")
            with psycopg.connect(
                conninfo.render_as_string(hide_password=False), autocommit=True
            ) as conn:
                world = make_world(conn, args, rng)
                print(
                    f"Generating {args.chunks:,} clustered {DIM}-d vectors: {len(world.user_ids)}"
                    f" users, {len(world.space_ids)} spaces ({args.scenario} scenario)"
                )
                centres, clusters, vectors, texts = make_data(args.chunks, rng)
                load(conn, world, vectors, texts)
            asyncio.run(run(engine, server.url, world, centres, clusters, vectors, args, rng))
        finally:
            engine.dispose()
            server.stop()
    print(f"\nWhole bench: {time.perf_counter() - total:.0f} s")


async def run(
    engine: Engine,
    url: str,
    world: World,
    centres: np.ndarray,
    clusters: np.ndarray,
    vectors: np.ndarray,
    args: argparse.Namespace,
    rng: np.random.Generator,
) -> None:
    given = GivenVectors()
    queries = make_queries(world, vectors, clusters, centres, args.queries, rng, given)
    sizes = [len(q.readable_rows) for q in queries]
    print(
        f"\nReadable chunks per question: median {int(np.median(sizes)):,}, "
        f"p5 {int(np.percentile(sizes, 5)):,}, p95 {int(np.percentile(sizes, 95)):,} "
        f"({100 * np.median(sizes) / len(vectors):.2f}% of the table)"
    )
    first = queries[0]
    print("\nPlan of the filtered vector query (HNSW, iterative scan):")
    print(vector_plan(engine, first, _spaces_of(world, first.user_id)))

    read_engine = make_read_engine(url, PoolConfig(pool_size=4, max_overflow=0))
    try:
        results = {}
        for label, exact_max in (
            ("HNSW only (before)", 0),
            ("app default (after)", args.exact_max),
        ):
            results[label] = await measure(read_engine, queries, vectors, given, args, exact_max)
        recall_plain = statistics.mean(
            _recall(
                q, vectors, without_iterative_scan(engine, q, _spaces_of(world, q.user_id)), args.k
            )
            for q in queries
        )
        print(
            f"\nRecall@{args.k} vs exact search over the same readable set "
            f"({len(queries)} questions):"
        )
        for label, (recall, _) in results.items():
            print(f"  {label:<24} {recall:.3f}")
        print(f"  {'HNSW, no iterative scan':<24} {recall_plain:.3f}")
        print(f"\nSQL-only latency of Retriever.search, k={args.k} (ms):")
        print(f"  {'design':<24} {'mode':<8} {'p50':>8} {'p95':>8}")
        for label, (_, latency) in results.items():
            for mode, (p50, p95) in latency.items():
                print(f"  {label:<24} {mode:<8} {p50:>8.1f} {p95:>8.1f}")
        await keyword_before_after(engine, read_engine, world, queries, args, rng)
        if args.scenario == "users":
            await with_model(read_engine, world, args, rng)
        recall, latency = results["app default (after)"]
        hybrid_p95 = latency["hybrid"][1]
        print(
            f"\nTargets: recall@10 >= 0.95 -> {'met' if recall >= 0.95 else 'NOT met'} "
            f"({recall:.3f}); hybrid SQL p95 < 50 ms -> "
            f"{'met' if hybrid_p95 < 50 else 'NOT met'} ({hybrid_p95:.1f} ms)"
        )
    finally:
        await read_engine.dispose()


def _spaces_of(world: World, user: uuid.UUID) -> list[uuid.UUID]:
    return [world.space_ids[i] for i in world.readable[user]]


def _recall(query: Query, vectors: np.ndarray, found: Sequence[str], k: int) -> float:
    rows = query.readable_rows
    exact = {f"bench-{i}" for i in rows[np.argsort(-(vectors[rows] @ query.vector))[:k]]}
    return len(exact & set(found)) / k


async def measure(
    read_engine: AsyncEngine,
    queries: list[Query],
    vectors: np.ndarray,
    given: GivenVectors,
    args: argparse.Namespace,
    exact_max: int,
) -> tuple[float, dict[str, tuple[float, float]]]:
    """(mean recall@k of vector mode, mode -> (p50, p95) ms) with this exact-scan cap."""
    retriever = Retriever(engine=read_engine, embeddings=given, exact_scan_max_chunks=exact_max)

    async def search(query: Query, mode: str) -> list[str]:
        found = await retriever.search(query.text, user_id=query.user_id, k=args.k, mode=mode)
        return [p.chunk_id for p in found]

    latency = {}
    for mode in MODES:
        times = await timed([partial(search, q, mode) for q in queries])
        latency[mode] = (percentile(times, 0.5), percentile(times, 0.95))
    recalls = [_recall(q, vectors, await search(q, "vector"), args.k) for q in queries]
    return statistics.mean(recalls), latency


def _legacy() -> ModuleType:
    spec = importlib.util.spec_from_file_location("legacy_keyword", _HERE / "legacy_keyword.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def keyword_before_after(
    engine: Engine,
    read_engine: AsyncEngine,
    world: World,
    queries: list[Query],
    args: argparse.Namespace,
    rng: np.random.Generator,
) -> None:
    """Keyword SQL and hybrid latency, the search before BM25 next to the current one."""
    legacy = _legacy()
    vocabulary = COMMON_WORDS + [w for c in range(CLUSTERS) for w in cluster_words(c)]
    count = max(10, args.queries // 4)
    kinds = {
        "3 common words": [" ".join(rng.choice(COMMON_WORDS, 3)) for _ in range(count)],
        "10 common words": [" ".join(rng.choice(COMMON_WORDS, 10)) for _ in range(count)],
        "150-word paragraph": [" ".join(rng.choice(vocabulary, 150)) for _ in range(count)],
    }
    depth = max(40, 4 * args.k)

    def old_keyword(user: uuid.UUID, text: str, limit: int) -> list[str]:
        with user_scope(engine, user) as connection:
            found: list[str] = legacy.legacy_keyword_search(
                connection, space_ids=_spaces_of(world, user), query=text, limit=limit
            )
            return found

    def new_keyword(user: uuid.UUID, text: str, limit: int) -> list[str]:
        scope = SearchScope({s: "bench" for s in _spaces_of(world, user)}, 0, 0)
        with user_scope(engine, user) as connection:
            result = keyword_search(connection, scope=scope, query=text, limit=limit)
            return [p.chunk_id for p in result.passages]

    retriever = Retriever(
        engine=read_engine, embeddings=GivenVectors(), exact_scan_max_chunks=args.exact_max
    )

    async def old_hybrid(user: uuid.UUID, text: str, vector: list[float]) -> object:
        # As the app did before: both lists concurrently (their RRF, microseconds of
        # Python, is left out).
        nearest, matching = await asyncio.gather(
            retriever.search(text, user_id=user, k=depth, mode="vector", query_vector=vector),
            asyncio.to_thread(old_keyword, user, text, depth),
        )
        return nearest, matching

    async def new_hybrid(user: uuid.UUID, text: str, vector: list[float]) -> object:
        return await retriever.search(
            text, user_id=user, k=args.k, mode="hybrid", query_vector=vector
        )

    # The search before BM25 matched on the whole table's full-text index, which
    # migration 0008 replaced by one whose words carry their space: build it back for it.
    started = time.perf_counter()
    with engine.begin() as connection:
        connection.execute(sa.text("SET LOCAL maintenance_work_mem = '1GB'"))
        connection.execute(
            sa.text(f"CREATE INDEX {LEGACY_INDEX} ON document_chunks USING gin (text_tsv)")
        )
        connection.execute(sa.text("ANALYZE document_chunks"))
    print(
        f"\nBuilt the search before BM25's index (GIN on text_tsv, whole table) in"
        f" {time.perf_counter() - started:.0f} s"
    )
    print(f"\nKeyword SQL and hybrid Retriever.search (SQL only), k={args.k} (ms):")
    print(f"  {'question':<20} {'search':<24} {'p50':>8} {'p95':>8}")
    for kind, texts in kinds.items():
        asked = [(queries[i % len(queries)], t) for i, t in enumerate(texts)]
        rows: list[tuple[str, list[float]]] = []
        for label, keyword in (("keyword before", old_keyword), ("keyword BM25", new_keyword)):
            times = await timed(
                [partial(asyncio.to_thread, keyword, q.user_id, t, args.k) for q, t in asked]
            )
            rows.append((label, times))
        for label, hybrid in (("hybrid before", old_hybrid), ("hybrid BM25", new_hybrid)):
            times = await timed(
                [partial(hybrid, q.user_id, t, q.vector.tolist()) for q, t in asked]
            )
            rows.append((label, times))
        for label, times in rows:
            print(
                f"  {kind:<20} {label:<24} {percentile(times, 0.5):>8.1f}"
                f" {percentile(times, 0.95):>8.1f}"
            )
    with engine.begin() as connection:
        connection.execute(sa.text(f"DROP INDEX {LEGACY_INDEX}"))


async def with_model(
    read_engine: AsyncEngine, world: World, args: argparse.Namespace, rng: np.random.Generator
) -> None:
    """Latency with the real query embedding in front, next to the model alone."""
    from retrieval.embeddings import load_embeddings

    model = load_embeddings(None)
    retriever = Retriever(
        engine=read_engine, embeddings=model, exact_scan_max_chunks=args.exact_max
    )
    words = [w for c in range(20) for w in cluster_words(c)]
    sentences = [
        f"how does {rng.choice(words)} relate to {rng.choice(words)} in practice"
        for _ in range(args.embedded_queries)
    ]
    model.embed_query("warm up")
    print(f"\nWith the query embedding (all-MiniLM-L6-v2), k={args.k} (ms):")
    # The model alone, in the same run: the CPU is shared, so read the rows below
    # against this one.
    times = await timed([partial(asyncio.to_thread, model.embed_query, t) for t in sentences])
    print(
        f"  {'embedding only':<24} {percentile(times, 0.5):>8.1f} {percentile(times, 0.95):>8.1f}"
    )
    for mode in MODES:
        times = await timed(
            [
                partial(
                    retriever.search,
                    t,
                    user_id=world.user_ids[i % len(world.user_ids)],
                    k=args.k,
                    mode=mode,
                )
                for i, t in enumerate(sentences)
            ]
        )
        print(
            f"  {mode + ' + embedding':<24} {percentile(times, 0.5):>8.1f} "
            f"{percentile(times, 0.95):>8.1f}"
        )


if __name__ == "__main__":
    main()
