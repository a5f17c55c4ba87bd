"""Legacy migration throughput: vectors copied vs texts re-embedded.

    python bench/migrate_legacy.py                  # 20,000 points, 20 users
    python bench/migrate_legacy.py --points 5000

Builds a generated legacy SQLite file and a Qdrant local-mode collection (384-d
cosine) in a temporary folder, an embedded PostgreSQL migrated to head, and runs
`migrate_legacy`. Prints, measured in this run:

- the chunk phase's points/s when vectors are copied (no model work), with the
  time of the verification (50 vector checks + 10 exact top-5 queries in both stores);
- a re-run after success: its time and rows written (target: 0);
- the real model's (all-MiniLM-L6-v2) embedding rate on a sample of the same
  texts, hence the time `--reembed` would take and the copy/re-embed ratio.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import bcrypt  # noqa: E402
import numpy as np  # noqa: E402
from qdrant_client import QdrantClient, models  # noqa: E402

from db.embedded import start_embedded  # noqa: E402
from db.engine import PoolConfig, make_engine  # noqa: E402
from db.schema import upgrade_to_head  # noqa: E402
from ingest.legacy import BatchDone, MigrationOptions, migrate_legacy  # noqa: E402

_WORDS = [
    "postgres",
    "vector",
    "index",
    "search",
    "embedding",
    "notion",
    "page",
    "chunk",
    "user",
    "thread",
    "message",
    "python",
    "database",
    "query",
    "answer",
    "cosine",
    "migration",
    "qdrant",
    "sqlite",
    "record",
    "token",
    "alpaca",
    "llama",
    "wool",
]


def _build(root: Path, *, points: int, users: int) -> tuple[Path, Path]:
    rng = random.Random(1)
    db_path, qdrant_path = root / "legacy.db", root / "qdrant"
    db = sqlite3.connect(db_path)
    db.execute(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, user_id TEXT UNIQUE, email TEXT, "
        "hashed_password TEXT, full_name TEXT, is_active, created_at)"
    )
    pw = bcrypt.hashpw(b"legacy-password", bcrypt.gensalt(rounds=4)).decode()
    db.executemany(
        "INSERT INTO users VALUES (?, ?, ?, ?, ?, 1, ?)",
        [
            (n, f"u{n}", f"user{n}@example.com", pw, f"User {n}", 1672531200 + n)
            for n in range(users)
        ],
    )
    db.commit()
    db.close()
    client = QdrantClient(path=str(qdrant_path))
    client.create_collection(
        "knowledgebase",
        vectors_config=models.VectorParams(size=384, distance=models.Distance.COSINE),
    )
    vectors = np.random.default_rng(1).standard_normal((points, 384), dtype=np.float32)
    for start in range(0, points, 2000):
        client.upsert(
            "knowledgebase",
            points=[
                models.PointStruct(
                    id=n,
                    vector=vectors[n].tolist(),
                    payload={
                        "chunk_id": f"c{n}",
                        "user_id": f"u{n % users}",
                        "text": " ".join(rng.choice(_WORDS) for _ in range(120)),
                        "source_type": "file",
                        "source_id": f"doc{n // 20}.pdf",
                        "chunk_index": n % 20,
                        "metadata": {"title": f"Doc {n // 20}"},
                    },
                )
                for n in range(start, min(points, start + 2000))
            ],
        )
    client.close()
    return db_path, qdrant_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--model-sample", type=int, default=200)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="kb-bench-migrate-") as tmp_name:
        tmp = Path(tmp_name)
        started = time.perf_counter()
        sqlite_path, qdrant_path = _build(tmp, points=args.points, users=args.users)
        print(
            f"legacy built: {args.points} points, {args.users} users "
            f"({time.perf_counter() - started:.1f} s)"
        )
        server = start_embedded(tmp / "pgdata")
        engine = make_engine(server.url, PoolConfig(pool_size=2, max_overflow=0))
        try:
            upgrade_to_head(engine, embedding_dimension=384)
            options = MigrationOptions(
                sqlite_path=sqlite_path, qdrant_path=qdrant_path, batch_size=args.batch_size
            )
            marks: dict[str, float] = {}

            def mark(event: BatchDone) -> None:
                marks.setdefault(event.phase, time.perf_counter())

            started = time.perf_counter()
            report = migrate_legacy(engine=engine, options=options, on_batch=mark)
            finished = time.perf_counter()
            chunk_s = marks["verification"] - marks["vectors"]
            verify_s = finished - marks["verification"]
            chunks = next(t for t in report.tables if t.target == "document_chunks")
            print(
                f"migration: {finished - started:.1f} s, verification "
                f"{'passed' if report.ok else 'FAILED'}"
            )
            print(
                f"chunk phase (copy): {chunks.written} chunks in {chunk_s:.1f} s = "
                f"{chunks.written / chunk_s:,.0f} chunks/s; verification {verify_s:.2f} s"
            )

            started = time.perf_counter()
            again = migrate_legacy(engine=engine, options=options)
            rerun_s = time.perf_counter() - started
            print(
                f"re-run after success: {rerun_s:.1f} s, rows written "
                f"{sum(t.written for t in again.tables)} (target 0)"
            )
        finally:
            engine.dispose()
            server.stop()

        from retrieval.embeddings import load_embeddings

        model = load_embeddings(None)
        texts = [
            " ".join(random.Random(n).choice(_WORDS) for _ in range(120))
            for n in range(args.model_sample)
        ]
        model.embed_documents(texts[:8])  # warm-up
        started = time.perf_counter()
        model.embed_documents(texts)
        rate = args.model_sample / (time.perf_counter() - started)
        print(
            f"real model: {rate:,.1f} chunks/s -> --reembed of {chunks.written} chunks "
            f"~{chunks.written / rate:,.0f} s"
        )
        print(f"copy vs re-embed: {chunks.written / chunk_s / rate:,.0f}x faster")


if __name__ == "__main__":
    main()
