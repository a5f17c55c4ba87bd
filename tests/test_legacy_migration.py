"""Legacy migration: SQLite + Qdrant (built at test time with every quirk) -> PostgreSQL."""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from qdrant_client import QdrantClient, models
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from db.chunks import ChunkRow, insert_chunks
from db.errors import InvalidInput
from db.models import User
from db.reset import reset_database
from db.schema import current_revision, head_revision
from db.scoped import user_scope
from db.users import authenticate, get_user
from ingest.legacy import (
    BatchDone,
    LegacySourceError,
    MigrationOptions,
    MigrationReport,
    mapping,
    migrate_legacy,
)
from ingest.legacy.coerce import parse_timestamp
from ingest.legacy.hnsw import INDEX_NAME
from tests.conftest import personal_space
from tests.fakes import HashEmbeddings
from tests.legacy_factory import COLLECTION, LegacyFixture, build_legacy

TABLES = (
    "users",
    "threads",
    "steps",
    "usage_logs",
    "notion_syncs",
    "notion_pages",
    "document_chunks",
)
EXPECTED_COUNTS = {
    "users": 3,
    "threads": 3,
    "steps": 9,
    "usage_logs": 3,
    "notion_syncs": 3,
    "notion_pages": 2,
    "document_chunks": 56,
}
ALICE = mapping.user_id("u-alice")
BOB = mapping.user_id("u-bob")


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> LegacyFixture:
    return build_legacy(tmp_path_factory.mktemp("legacy"))


def _options(legacy: LegacyFixture, **overrides: object) -> MigrationOptions:
    values: dict[str, object] = {
        "sqlite_path": legacy.sqlite_path,
        "qdrant_path": legacy.qdrant_path,
        "batch_size": 8,
    }
    values.update(overrides)
    return MigrationOptions(**values)  # type: ignore[arg-type]


def _migrate(engine: Engine, legacy: LegacyFixture, **kw: object) -> MigrationReport:
    embeddings = kw.pop("embeddings", None)
    on_batch = kw.pop("on_batch", None)
    return migrate_legacy(
        engine=engine,
        options=_options(legacy, **kw),
        embeddings=embeddings,  # type: ignore[arg-type]
        on_batch=on_batch,  # type: ignore[arg-type]
    )


def _counts(engine: Engine) -> dict[str, int]:
    # The test connects as the owner, which row-level security does not restrict.
    with engine.connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}


def _checksum(engine: Engine) -> str:
    digest = hashlib.sha256()
    with engine.connect() as conn:
        for table in TABLES:
            value = conn.execute(
                sa.text(f"SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM {table} t")
            ).scalar_one()
            digest.update(f"{table}:{value}".encode())
    return digest.hexdigest()


def _table(report: MigrationReport, target: str) -> tuple[int, int, int, int]:
    t = next(t for t in report.tables if t.target == target)
    return t.read, t.written, t.present, t.skipped


def _qdrant_vectors(legacy: LegacyFixture) -> dict[str, list[float]]:
    client = QdrantClient(path=str(legacy.qdrant_path))
    try:
        records = client.retrieve(COLLECTION, ids=list(legacy.good_points), with_vectors=True)
    finally:
        client.close()
    return {legacy.good_points[r.id][0]: list(r.vector) for r in records}  # type: ignore[arg-type,index]


def _pg_vectors(engine: Engine, user_id: uuid.UUID) -> dict[str, list[float]]:
    with user_scope(engine, user_id) as conn:
        rows = conn.execute(
            sa.text(
                "SELECT chunk_id, embedding::text FROM document_chunks"
                " WHERE space_id = (SELECT id FROM spaces WHERE personal_of = :u)"
            ),
            {"u": user_id},
        )
        return {r.chunk_id: [float(x) for x in r.embedding.strip("[]").split(",")] for r in rows}


# --- the main run -------------------------------------------------------------------------


def test_migration_writes_every_table_and_reports_bad_rows_with_their_rule(
    engine: Engine, legacy: LegacyFixture
) -> None:
    report = _migrate(engine, legacy)

    assert _counts(engine) == EXPECTED_COUNTS
    assert _table(report, "users") == (4, 3, 0, 1)
    assert _table(report, "threads") == (4, 3, 0, 1)
    assert _table(report, "steps") == (11, 9, 0, 2)
    assert _table(report, "usage_logs") == (4, 3, 0, 1)
    assert _table(report, "notion_syncs") == (4, 3, 0, 1)
    assert _table(report, "notion_pages") == (2, 2, 0, 0)
    assert _table(report, "document_chunks") == (61, 56, 0, 5)
    assert report.ok, report.to_text()

    issues = {(i.table, i.row_id): (i.reason, i.action) for i in report.issues}
    assert issues[("users", "u-bob2")][1] == "merged"
    assert "u-bob" in issues[("users", "u-bob2")][0]
    assert issues[("chat_sessions", "s-x")] == ("unknown user 'u-ghost'", "skipped")
    assert issues[("chat_messages", "41")] == ("orphan: no session 's-missing'", "skipped")
    assert issues[("chat_messages", "51")][1] == "skipped"
    assert issues[("chat_messages", "12")][1] == "kept"  # invalid JSON in sources
    assert issues[("usage_logs", "2")][1] == "kept"  # invalid JSON in details
    assert issues[("usage_logs", "3")] == ("unknown user 'u-ghost'", "skipped")
    assert issues[("notion_syncs", "4")][1] == "skipped"
    skipped_points = {
        int(i.row_id): i.reason
        for i in report.issues
        if i.table.startswith("qdrant") and i.action == "skipped"
    }
    assert skipped_points.keys() == legacy.bad_points.keys()
    assert "duplicate chunk_id 'chunk-001'" in skipped_points[106]


def test_migrated_users_log_in_with_their_old_passwords(
    engine: Engine, legacy: LegacyFixture
) -> None:
    _migrate(engine, legacy)
    with Session(engine) as session:
        alice = authenticate(
            session=session, identifier="ALICE@example.com", password="alice-old-pass"
        )
        assert alice is not None and alice.id == ALICE
        assert alice.identifier == "alice@example.com" and alice.display_name == "Alice A"
        assert alice.password_hash is not None and alice.password_hash.startswith("$argon2")
        assert (
            authenticate(session=session, identifier="alice@example.com", password="wrong-pass")
            is None
        )
        bob = authenticate(session=session, identifier="bob@example.com", password="bob-old-pass")
        assert bob is not None and bob.id == BOB
        # The later duplicate account was merged: its password is not an alternative login.
        assert (
            authenticate(session=session, identifier="bob@example.com", password="bobby-pass-2")
            is None
        )
        carol = get_user(session=session, identifier="u-carol")
        assert carol is not None and carol.is_active is False and carol.email is None
        session.commit()


async def test_conversation_appears_in_chainlit_history_with_messages_in_order(
    engine: Engine, legacy: LegacyFixture, db_url: str
) -> None:
    _migrate(engine, legacy)
    from chainlit.data.sql_alchemy import SQLAlchemyDataLayer

    layer = SQLAlchemyDataLayer(conninfo=engine.url.render_as_string(hide_password=False))
    try:
        persisted = await layer.get_user("alice@example.com")
        assert persisted is not None and persisted.id == str(ALICE)
        threads = await layer.get_all_user_threads(user_id=str(ALICE))
        assert threads is not None
        # The sidebar lists the most recently active thread first.
        assert [t["name"] for t in threads] == ["Alice second chat", "Alice first chat"]
        thread = await layer.get_thread(str(mapping.thread_id("s-a1")))
        assert thread is not None and thread["userIdentifier"] == "alice@example.com"
        steps = thread["steps"]
        assert [(s["type"], s["output"]) for s in steps] == [
            ("user_message", "What is pgvector?"),
            ("assistant_message", "It stores vectors."),
            ("assistant_message", "Plain answer."),  # same time as the next: id order
            ("user_message", "And HNSW?"),
            ("system_message", "Context trimmed."),
        ]
        assert steps[0]["name"] == "alice@example.com"
        assert steps[1]["metadata"]["sources"] == [{"title": "pg.md", "page": 1}]
        assert steps[2]["metadata"]["legacy_sources_raw"] == "not json{"
        assert thread["createdAt"] == "2023-02-01T09:00:00.000000Z"
        # The merged duplicate's conversation belongs to the kept account.
        bob_threads = await layer.get_all_user_threads(user_id=str(BOB))
        assert [t["name"] for t in bob_threads or []] == ["Bobby's chat"]
    finally:
        await layer.engine.dispose()


def test_usage_logs_and_notion_history_keep_their_content(
    engine: Engine, legacy: LegacyFixture
) -> None:
    _migrate(engine, legacy)
    with user_scope(engine, ALICE) as conn:
        log = conn.execute(
            sa.text(
                "SELECT action, tokens_used, details, created_at FROM usage_logs WHERE user_id = :u"
            ),
            {"u": ALICE},
        ).one()
        pages = conn.execute(
            sa.text(
                "SELECT page_id, title, status FROM notion_pages "
                "WHERE space_id = (SELECT id FROM spaces WHERE personal_of = :u) ORDER BY page_id"
            ),
            {"u": ALICE},
        ).all()
        syncs = conn.execute(
            sa.text(
                "SELECT status, error, details FROM notion_syncs "
                "WHERE space_id = (SELECT id FROM spaces WHERE personal_of = :u) ORDER BY id"
            ),
            {"u": ALICE},
        ).all()
    assert (log.action, log.tokens_used) == ("query", 120)
    assert log.details == {"q": "pgvector", "legacy_id": "1"}
    assert log.created_at == parse_timestamp("2023-02-01T09:00:05Z")
    # The newest sync of p1 (Unix seconds, later than the ISO one) names the page.
    assert [tuple(p) for p in pages] == [("p1", "Roadmap v2", "legacy"), ("p2", "Notes", "legacy")]
    assert {s.status for s in syncs} == {"legacy"}
    assert syncs[2].error == "legacy status: failed" and syncs[2].details["page_id"] == "p2"
    with user_scope(engine, BOB) as conn:
        bob_logs = conn.execute(
            sa.text(
                "SELECT details->>'legacy_id' AS id, details FROM usage_logs "
                "WHERE user_id = :u ORDER BY 1"
            ),
            {"u": BOB},
        ).all()
    assert [r.id for r in bob_logs] == ["2", "4"]  # 4 belonged to the merged duplicate
    assert bob_logs[0].details["legacy_raw"] == "not json"


# --- vectors ------------------------------------------------------------------------------


def test_vectors_are_copied_exactly_without_embedding_work(
    engine: Engine, legacy: LegacyFixture, fake_embeddings: HashEmbeddings
) -> None:
    report = _migrate(engine, legacy, embeddings=fake_embeddings)

    assert fake_embeddings.calls == 0 and report.texts_embedded == 0
    assert report.vector_mode.startswith("copied")
    source = _qdrant_vectors(legacy)
    stored: dict[str, list[float]] = {}
    for user in (ALICE, BOB, mapping.user_id("u-carol")):
        stored.update(_pg_vectors(engine, user))
    assert stored.keys() == source.keys()
    worst = max(float(np.max(np.abs(np.array(stored[c]) - np.array(source[c])))) for c in source)
    assert worst < 1e-6
    assert len(report.vector_checks) == 50 and all(c.ok for c in report.vector_checks)
    with user_scope(engine, ALICE) as conn:
        row = conn.execute(
            sa.text(
                "SELECT source_type, source_id, chunk_index, metadata FROM document_chunks "
                "WHERE chunk_id = 'notion-p1-0'"
            )
        ).one()
    assert (row.source_type, row.source_id, row.chunk_index) == ("notion", "legacy", 0)
    assert row.metadata["legacy_point_id"] == "101"


def test_pgvector_search_returns_the_same_chunks_as_qdrant(
    engine: Engine, legacy: LegacyFixture
) -> None:
    report = _migrate(engine, legacy)
    assert len(report.neighbour_checks) == 10
    assert all(c.ok for c in report.neighbour_checks), report.to_text()

    # Fresh queries, not stored vectors: exact search in both stores, per user.
    rng = random.Random(3)
    client = QdrantClient(path=str(legacy.qdrant_path))
    try:
        for user_id, keys in ((ALICE, ["u-alice"]), (BOB, ["u-bob", "u-bob2"])):
            for _ in range(3):
                query = [rng.gauss(0, 1) for _ in range(384)]
                hits = client.query_points(
                    COLLECTION,
                    query=query,
                    limit=5,
                    query_filter=models.Filter(
                        must=[
                            models.FieldCondition(key="user_id", match=models.MatchAny(any=keys))
                        ],
                        must_not=[models.HasIdCondition(has_id=list(legacy.bad_points))],
                    ),
                ).points
                expected = [legacy.good_points[h.id][0] for h in hits]  # type: ignore[index]
                with user_scope(engine, user_id) as conn:
                    conn.execute(sa.text("SET LOCAL enable_indexscan = off"))
                    got = (
                        conn.execute(
                            sa.text(
                                "SELECT chunk_id FROM document_chunks WHERE space_id ="
                                " (SELECT id FROM spaces WHERE personal_of = :u) "
                                "ORDER BY embedding <=> CAST(:q AS vector) LIMIT 5"
                            ),
                            {"u": user_id, "q": str(query)},
                        )
                        .scalars()
                        .all()
                    )
                assert got == expected
    finally:
        client.close()


def test_reembed_embeds_the_payload_text(engine: Engine, legacy: LegacyFixture) -> None:
    embeddings = HashEmbeddings()
    report = _migrate(engine, legacy, reembed=True, embeddings=embeddings)

    assert report.texts_embedded == 56 and embeddings.texts_embedded >= 56
    assert report.vector_mode.startswith("re-embedded")
    assert report.ok and report.vector_checks and report.neighbour_checks == []
    stored = _pg_vectors(engine, ALICE)
    chunk_id, _, text = legacy.good_points[1]
    expected = embeddings.embed_documents([text])[0]
    assert np.allclose(stored[chunk_id], expected, atol=1e-6)
    # A second run finds every chunk present: no embedding work at all.
    before = embeddings.texts_embedded
    again = _migrate(engine, legacy, reembed=True, embeddings=embeddings)
    assert again.texts_embedded == 0
    assert embeddings.texts_embedded - before == len(again.vector_checks)  # only the check


def test_dimension_mismatch_re_embeds_and_needs_a_model(engine: Engine, tmp_path: Path) -> None:
    small = build_legacy(tmp_path / "small", dimension=8)
    with pytest.raises(InvalidInput, match="re-embedded"):
        _migrate(engine, small)
    report = _migrate(engine, small, embeddings=HashEmbeddings())
    assert "dimension 8 != 384" in report.vector_mode
    assert _counts(engine)["document_chunks"] == 56


# --- dry run, interruption, re-runs -----------------------------------------------------------


def test_dry_run_writes_nothing_and_reports_what_a_real_run_writes(
    engine: Engine, legacy: LegacyFixture
) -> None:
    dry = _migrate(engine, legacy, dry_run=True)
    assert dry.dry_run and dry.ok, dry.to_text()
    assert _counts(engine) == dict.fromkeys(TABLES, 0)

    real = _migrate(engine, legacy)
    assert [(t.target, t.read, t.written, t.skipped) for t in dry.tables] == [
        (t.target, t.read, t.written, t.skipped) for t in real.tables
    ]


@pytest.mark.parametrize(("phase", "batch"), [("messages", 1), ("usage logs", 1), ("vectors", 3)])
def test_interrupted_run_completes_on_rerun_without_duplicates(
    engine: Engine, legacy: LegacyFixture, phase: str, batch: int
) -> None:
    class Interrupted(Exception):
        pass

    def stop(event: BatchDone) -> None:
        if event.phase == phase and event.batch == batch:
            raise Interrupted

    with pytest.raises(Interrupted):
        _migrate(engine, legacy, batch_size=2, on_batch=stop)
    partial = _counts(engine)
    assert partial != EXPECTED_COUNTS and partial["users"] == 3

    report = _migrate(engine, legacy, batch_size=2)
    assert _counts(engine) == EXPECTED_COUNTS
    assert report.ok, report.to_text()
    assert sum(t.present for t in report.tables) > 0


def test_rerun_after_success_changes_nothing(engine: Engine, legacy: LegacyFixture) -> None:
    first = _migrate(engine, legacy)
    counts, checksum = _counts(engine), _checksum(engine)

    second = _migrate(engine, legacy)
    assert _counts(engine) == counts and _checksum(engine) == checksum
    assert all(t.written == 0 for t in second.tables)
    assert [t.present for t in second.tables] == [t.written for t in first.tables]
    assert second.ok


def test_source_files_are_never_modified(engine: Engine, legacy: LegacyFixture) -> None:
    def fingerprint() -> dict[str, str]:
        files = [legacy.sqlite_path, *sorted(legacy.qdrant_path.rglob("*"))]
        return {
            str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in files
            if p.is_file() and p.name != ".lock"
        }

    before = fingerprint()
    _migrate(engine, legacy)
    assert fingerprint() == before


def test_existing_account_with_the_same_email_keeps_its_password_and_gets_the_data(
    engine: Engine, legacy: LegacyFixture, make_user: Callable[..., User]
) -> None:
    existing = make_user("alice@example.com", password="new-app-password")
    report = _migrate(engine, legacy)
    issue = next(i for i in report.issues if i.row_id == "u-alice")
    assert issue.action == "merged" and "already has an account" in issue.reason
    with Session(engine) as session:
        assert authenticate(
            session=session, identifier="alice@example.com", password="new-app-password"
        )
    with engine.connect() as conn:
        owners = conn.execute(
            sa.text("SELECT DISTINCT \"userId\" FROM threads WHERE name LIKE 'Alice%'")
        ).all()
    assert owners == [(existing.id,)]


# --- bad sources ----------------------------------------------------------------------------


def test_missing_or_wrong_sources_fail_with_clear_errors(
    engine: Engine, legacy: LegacyFixture, tmp_path: Path
) -> None:
    with pytest.raises(LegacySourceError, match="does not exist"):
        _migrate(engine, legacy, sqlite_path=tmp_path / "nope.db")
    not_sqlite = tmp_path / "notes.txt"
    not_sqlite.write_text("hello " * 200)
    with pytest.raises(LegacySourceError, match="not a readable SQLite"):
        _migrate(engine, legacy, sqlite_path=not_sqlite)
    with pytest.raises(LegacySourceError, match=r"no collection 'other'.*knowledgebase"):
        _migrate(engine, legacy, collection="other")
    missing_dir = tmp_path / "no-qdrant"
    with pytest.raises(LegacySourceError, match="not a Qdrant local-mode folder"):
        _migrate(engine, legacy, qdrant_path=missing_dir)
    assert not missing_dir.exists()


def test_without_qdrant_only_the_sqlite_tables_are_migrated(
    engine: Engine, legacy: LegacyFixture
) -> None:
    report = _migrate(engine, legacy, qdrant_path=None)
    assert _counts(engine) == EXPECTED_COUNTS | {"document_chunks": 0}
    assert report.vector_mode.startswith("not migrated") and report.ok


# --- rollback -------------------------------------------------------------------------------


def test_reset_database_empties_every_table_and_keeps_the_schema_at_head(
    engine: Engine, legacy: LegacyFixture
) -> None:
    _migrate(engine, legacy)
    reset_database(engine)
    assert _counts(engine) == dict.fromkeys(TABLES, 0)
    assert current_revision(engine) == head_revision()
    assert _migrate(engine, legacy).ok  # and the migration can run again


# --- loose legacy values --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2023-02-01T09:00:01Z", "2023-02-01T09:00:01+00:00"),
        ("2023-02-01 09:00:01", "2023-02-01T09:00:01+00:00"),
        ("2023-02-01T11:00:01+02:00", "2023-02-01T09:00:01+00:00"),
        (1675242001, "2023-02-01T09:00:01+00:00"),
        ("1675242001", "2023-02-01T09:00:01+00:00"),
        (1675242001.5, "2023-02-01T09:00:01.500000+00:00"),
        (1675242001000, "2023-02-01T09:00:01+00:00"),
    ],
)
def test_timestamps_in_every_legacy_form_become_aware_utc(value: object, expected: str) -> None:
    parsed = parse_timestamp(value)
    assert parsed is not None and parsed.isoformat() == expected


@pytest.mark.parametrize("value", [None, "", "yesterday", "2023-13-45", -5])
def test_unreadable_timestamps_are_none(value: object) -> None:
    assert parse_timestamp(value) is None


# --- verification catches a damaged target; the CLI ---------------------------------------


def _damage_vectors(engine: Engine, user_id: uuid.UUID) -> None:
    with user_scope(engine, user_id) as conn:
        conn.execute(
            sa.text(
                "UPDATE document_chunks SET embedding = CAST(:v AS vector)"
                " WHERE space_id = (SELECT id FROM spaces WHERE personal_of = :u)"
            ),
            {"v": str([1.0] + [0.0] * 383), "u": user_id},
        )


def test_verification_fails_when_stored_vectors_differ_from_qdrant(
    engine: Engine, legacy: LegacyFixture
) -> None:
    assert _migrate(engine, legacy).ok
    _damage_vectors(engine, ALICE)
    report = _migrate(engine, legacy)
    assert not report.ok
    assert any("vector of chunk" in f for f in report.failures)
    assert any("neighbours of chunk" in f for f in report.failures)


def test_kb_migrate_prints_the_report_and_exits_by_verification(
    engine: Engine,
    legacy: LegacyFixture,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from chat_app.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("KB_DATA_DIR", str(tmp_path / "data"))
    args = [
        "migrate",
        "--sqlite",
        str(legacy.sqlite_path),
        "--qdrant-path",
        str(legacy.qdrant_path),
    ]
    runner = CliRunner()

    dry = runner.invoke(app, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "Dry run" in dry.output and "Verification passed" in dry.output
    assert _counts(engine)["users"] == 0

    real = runner.invoke(app, [*args, "--batch-size", "16"])
    assert real.exit_code == 0, real.output
    assert "Migration report" in real.output and "u-bob2" in real.output
    assert _counts(engine) == EXPECTED_COUNTS

    _damage_vectors(engine, BOB)
    failed = runner.invoke(app, args)
    assert failed.exit_code == 3
    assert "Verification failed" in failed.output


def test_chunk_id_owned_by_another_target_user_is_reported_not_overwritten(
    engine: Engine, legacy: LegacyFixture, make_user: Callable[..., User]
) -> None:
    zed = make_user("zed")
    with user_scope(engine, zed.id) as conn:
        insert_chunks(
            conn,
            [
                ChunkRow(
                    chunk_id="chunk-001",
                    space_id=personal_space(engine, zed.id),
                    added_by=zed.id,
                    text="zed's own text",
                    embedding=[1.0] + [0.0] * 383,
                    source_type="file",
                    source_id="z",
                )
            ],
        )
    report = _migrate(engine, legacy)

    assert report.ok, report.to_text()
    assert _table(report, "document_chunks") == (61, 55, 0, 6)
    issue = next(i for i in report.issues if i.row_id == "1")
    assert "belongs to another user" in issue.reason and issue.action == "skipped"
    with user_scope(engine, zed.id) as conn:
        text = conn.execute(
            sa.text("SELECT text FROM document_chunks WHERE chunk_id = 'chunk-001'")
        )
        assert text.scalar_one() == "zed's own text"


# --- bulk loads: the HNSW index is built once, after the load -------------------------------


def _hnsw_definition(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"), {"n": INDEX_NAME}
        ).scalar()


def test_bulk_load_into_empty_table_builds_the_same_hnsw_index_after_loading(
    engine: Engine, legacy: LegacyFixture
) -> None:
    before = _hnsw_definition(engine)
    seen_during_load: list[str | None] = []

    def watch(event: BatchDone) -> None:
        if event.phase == "vectors" and event.batch == 2:
            seen_during_load.append(_hnsw_definition(engine))

    report = _migrate(engine, legacy, bulk_index_threshold=1, on_batch=watch)
    assert seen_during_load == [None]  # dropped while loading
    assert before is not None and _hnsw_definition(engine) == before
    assert any("HNSW index built once" in n for n in report.notes)
    assert report.ok, report.to_text()


def test_interrupted_bulk_load_restores_the_index_and_a_killed_one_is_repaired(
    engine: Engine, legacy: LegacyFixture
) -> None:
    before = _hnsw_definition(engine)

    def stop(event: BatchDone) -> None:
        if event.phase == "vectors" and event.batch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _migrate(engine, legacy, bulk_index_threshold=1, on_batch=stop)
    assert _hnsw_definition(engine) == before

    # A run killed outright leaves the index dropped: the next run rebuilds it.
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP INDEX {INDEX_NAME}"))
    report = _migrate(engine, legacy)
    assert _hnsw_definition(engine) == before
    assert report.ok and _counts(engine) == EXPECTED_COUNTS
