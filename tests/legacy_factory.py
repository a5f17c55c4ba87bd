"""Builds, at test time, a legacy SQLite database and Qdrant collection with every quirk.

Quirks (see docs/legacy-schema.md): extra and missing columns, ISO timestamps with
and without zone, Unix seconds as numbers and as text, a message tie on time,
orphan messages, rows of an unknown user, invalid JSON in `sources`/`details`,
emails differing only in case, bcrypt hashes; Qdrant points lacking text, user,
chunk_id or source fields, a duplicated chunk_id, integer and UUID point ids.
"""

from __future__ import annotations

import json
import random
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
from qdrant_client import QdrantClient, models

DIMENSION = 384
COLLECTION = "knowledgebase"
PASSWORDS = {"u-alice": "alice-old-pass", "u-bob": "bob-old-pass", "u-bob2": "bobby-pass-2"}
WORDS = [
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
]


@dataclass
class LegacyFixture:
    sqlite_path: Path
    qdrant_path: Path
    #: point id -> (chunk_id, legacy user key, text) of points that must be migrated
    good_points: dict[int | str, tuple[str, str, str]] = field(default_factory=dict)
    #: point id -> why it must be skipped
    bad_points: dict[int | str, str] = field(default_factory=dict)


def _hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


def _sqlite(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE users (id INTEGER PRIMARY KEY, user_id TEXT UNIQUE, email TEXT,
            hashed_password TEXT, full_name TEXT, is_active, created_at, avatar TEXT);
        -- no updated_at; an extra column
        CREATE TABLE chat_sessions (id INTEGER PRIMARY KEY, session_id TEXT UNIQUE, user_id TEXT,
            title TEXT, created_at, model TEXT);
        CREATE TABLE chat_messages (id INTEGER PRIMARY KEY, session_id TEXT, role TEXT,
            content TEXT, sources TEXT, created_at);
        CREATE TABLE usage_logs (id INTEGER PRIMARY KEY, user_id TEXT, action TEXT,
            details TEXT, tokens_used, created_at);
        -- no chunks_count
        CREATE TABLE notion_syncs (id INTEGER PRIMARY KEY, user_id TEXT, page_id TEXT,
            page_title TEXT, last_synced_at, status TEXT);
        """
    )
    db.executemany(
        "INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                1,
                "u-alice",
                "Alice@Example.com",
                _hash(PASSWORDS["u-alice"]),
                "Alice A",
                1,
                "2023-01-05T10:00:00",
                "a.png",
            ),
            (
                2,
                "u-bob",
                "bob@example.com",
                _hash(PASSWORDS["u-bob"]),
                "Bob",
                "true",
                1672531200,
                None,
            ),
            # Same email as u-bob but for case, created later: merged into u-bob.
            (
                3,
                "u-bob2",
                "BOB@example.com",
                _hash(PASSWORDS["u-bob2"]),
                "Bobby",
                1,
                "2023-06-01T00:00:00+02:00",
                None,
            ),
            # No email: the identifier is the user_id; inactive; Unix seconds as text.
            (4, "u-carol", None, _hash("carol-old-pass"), None, 0, "1690000000", None),
        ],
    )
    db.executemany(
        "INSERT INTO chat_sessions VALUES (?, ?, ?, ?, ?, ?)",
        [
            (1, "s-a1", "u-alice", "Alice first chat", "2023-02-01 09:00:00", "gpt"),
            (2, "s-a2", "u-alice", "Alice second chat", 1675400000, "gpt"),
            (3, "s-b1", "u-bob2", "Bobby's chat", "2023-07-01T08:00:00Z", None),
            (4, "s-x", "u-ghost", "Ghost chat", "2023-07-02T08:00:00Z", None),
        ],
    )
    sources = json.dumps([{"title": "pg.md", "page": 1}])
    db.executemany(
        "INSERT INTO chat_messages VALUES (?, ?, ?, ?, ?, ?)",
        [
            # Ids are not in time order; 13 and 12 share a time (id breaks the tie).
            (14, "s-a1", "assistant", "It stores vectors.", sources, "2023-02-01T09:00:05"),
            (11, "s-a1", "user", "What is pgvector?", None, "2023-02-01T09:00:01Z"),
            (13, "s-a1", "user", "And HNSW?", "", "2023-02-01T09:00:09+00:00"),
            (12, "s-a1", "assistant", "Plain answer.", "not json{", "2023-02-01T09:00:09+00:00"),
            (15, "s-a1", "system", "Context trimmed.", None, 1675242020),
            (21, "s-a2", "user", "Hello again", None, 1675400001),
            (22, "s-a2", "assistant", "Hi Alice", "[]", "1675400002"),
            (31, "s-b1", "user", "Bobby asks", None, "2023-07-01T08:00:01Z"),
            (32, "s-b1", "assistant", "Bobby gets", None, "2023-07-01T08:00:02Z"),
            (41, "s-missing", "user", "orphan message", None, "2023-08-01T00:00:00Z"),
            (51, "s-x", "user", "ghost message", None, "2023-07-02T08:00:01Z"),
        ],
    )
    db.executemany(
        "INSERT INTO usage_logs VALUES (?, ?, ?, ?, ?, ?)",
        [
            (1, "u-alice", "query", '{"q": "pgvector"}', 120, "2023-02-01T09:00:05Z"),
            (2, "u-bob", "query", "not json", "55", 1672600000),
            (3, "u-ghost", "query", "{}", 1, 1672600001),
            (4, "u-bob2", "upload", '{"file": "a.pdf"}', None, "2023-07-01T08:00:00"),
        ],
    )
    db.executemany(
        "INSERT INTO notion_syncs VALUES (?, ?, ?, ?, ?, ?)",
        [
            (1, "u-alice", "p1", "Roadmap", "2023-03-01T12:00:00Z", "success"),
            (2, "u-alice", "p1", "Roadmap v2", 1680000000, "success"),
            (3, "u-alice", "p2", "Notes", "2023-03-02T12:00:00Z", "failed"),
            (4, "u-ghost", "p9", "Ghost page", "2023-03-02T12:00:00Z", "success"),
        ],
    )
    db.commit()
    db.close()


def _text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(12))


def _vector(rng: random.Random) -> list[float]:
    return [rng.gauss(0.0, 1.0) for _ in range(DIMENSION)]


def _qdrant(path: Path, fixture: LegacyFixture, *, dimension: int) -> None:
    rng = random.Random(7)
    points: list[models.PointStruct] = []

    def add(point_id: int | str, payload: dict[str, object], *, good: str | None = None) -> None:
        points.append(
            models.PointStruct(id=point_id, vector=_vector(rng)[:dimension], payload=payload)
        )
        if good is None:
            fixture.good_points[point_id] = (
                str(payload.get("chunk_id", point_id)),
                str(payload["user_id"]),
                str(payload["text"]),
            )
        else:
            fixture.bad_points[point_id] = good

    owners = ["u-alice"] * 30 + ["u-bob"] * 12 + ["u-bob2"] * 6 + ["u-carol"] * 6
    for n, owner in enumerate(owners, start=1):
        add(
            n,
            {
                "chunk_id": f"chunk-{n:03d}",
                "user_id": owner,
                "text": _text(rng),
                "source_type": "file",
                "source_id": f"{owner}-doc-{n % 3}.pdf",
                "source_url": None,
                "chunk_index": n % 7,
                "metadata": {"title": f"Doc {n % 3}", "page": n % 5 + 1},
            },
        )
    # Lacking fields: no chunk_id (the point id is used), no source fields, UUID point id.
    add("6a1f8a5e-2d47-4c59-9d3c-7f1e0b2a9c11", {"user_id": "u-alice", "text": _text(rng)})
    add(
        101,
        {
            "chunk_id": "notion-p1-0",
            "user_id": "u-alice",
            "text": _text(rng),
            "source_url": "https://www.notion.so/p1",
            "chunk_index": "0",
        },
    )
    add(102, {"chunk_id": "chunk-102", "user_id": "u-alice", "text": ""}, good="no text in payload")
    add(103, {"chunk_id": "chunk-103", "user_id": "u-alice"}, good="no text in payload")
    add(104, {"chunk_id": "chunk-104", "user_id": "u-ghost", "text": "ghost"}, good="unknown user")
    add(105, {"chunk_id": "chunk-105", "text": "nobody"}, good="no user_id in payload")
    add(
        106,
        {"chunk_id": "chunk-001", "user_id": "u-alice", "text": "dup"},
        good="duplicate chunk_id",
    )

    client = QdrantClient(path=str(path))
    client.create_collection(
        COLLECTION,
        vectors_config=models.VectorParams(size=dimension, distance=models.Distance.COSINE),
    )
    client.upsert(COLLECTION, points=points)
    client.close()


def build_legacy(root: Path, *, dimension: int = DIMENSION) -> LegacyFixture:
    """Write `legacy.db` and a Qdrant local-mode folder under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    fixture = LegacyFixture(sqlite_path=root / "legacy.db", qdrant_path=root / "qdrant")
    _sqlite(fixture.sqlite_path)
    _qdrant(fixture.qdrant_path, fixture, dimension=dimension)
    return fixture
