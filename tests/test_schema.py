"""The migrations own the schema: blank database -> head, with every table and index."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from db.engine import PoolConfig, make_engine
from db.schema import (
    REQUIRED_TABLES,
    check_schema,
    current_revision,
    head_revision,
    upgrade_to_head,
    vector_dimension,
)
from tests.conftest import drop_database, personal_space
from tests.fakes import MakeUser


def test_blank_database_upgrades_to_head_with_every_table(pg_admin_url: str) -> None:
    import psycopg

    from tests.conftest import _admin_conninfo, _with_database

    with psycopg.connect(_admin_conninfo(pg_admin_url), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS kb_blank WITH (FORCE)")
        conn.execute("CREATE DATABASE kb_blank")
    url = _with_database(pg_admin_url, "kb_blank")
    engine = make_engine(url, PoolConfig(pool_size=1, max_overflow=0))
    try:
        assert current_revision(engine) is None
        upgrade_to_head(engine, embedding_dimension=384)
        assert current_revision(engine) == head_revision()
        tables = set(sa.inspect(engine).get_table_names())
        assert set(REQUIRED_TABLES) <= tables
        check_schema(engine)
        upgrade_to_head(engine, embedding_dimension=384)  # idempotent
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
        drop_database(pg_admin_url, url)


def test_document_chunks_has_vector_hnsw_and_fulltext_indexes(engine: Engine) -> None:
    assert vector_dimension(engine) == 384
    with engine.connect() as conn:
        indexes: dict[str, str] = dict(
            conn.execute(
                sa.text(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'document_chunks'"
                )
            ).all()
        )
    assert "hnsw" in indexes["document_chunks_embedding_hnsw"]
    assert "vector_cosine_ops" in indexes["document_chunks_embedding_hnsw"]
    # Full text: one GIN index of each chunk's words tagged with its space (0008).
    assert (
        "gin (kb_scoped_lexemes(space_id, text_tsv))" in indexes["document_chunks_scoped_text_gin"]
    )
    assert "document_chunks_text_tsv_gin" not in indexes


def test_tsvector_column_is_generated_from_text(engine: Engine, make_user: MakeUser) -> None:
    user = make_user("alice")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO document_chunks "
                "(chunk_id, space_id, added_by, text, source_type, source_id, embedding) "
                "VALUES ('c1', :s, :u, 'Running databases', 'file', 's1', :v)"
            ),
            {
                "s": personal_space(engine, user.id),
                "u": user.id,
                "v": "[" + ",".join(["0.1"] * 384) + "]",
            },
        )
        found = conn.execute(
            sa.text(
                "SELECT chunk_id FROM document_chunks "
                "WHERE text_tsv @@ plainto_tsquery('english', 'run database')"
            )
        ).scalar()
    assert found == "c1"


def _blank_database(pg_admin_url: str, name: str) -> str:
    import psycopg

    from tests.conftest import _admin_conninfo, _with_database

    with psycopg.connect(_admin_conninfo(pg_admin_url), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return _with_database(pg_admin_url, name)


_AT_0001 = [
    """INSERT INTO users (id, identifier, metadata) VALUES
       ('11111111-1111-1111-1111-111111111111', 'alice', '{}'),
       ('22222222-2222-2222-2222-222222222222', 'bob', '{}')""",
    """INSERT INTO document_chunks (chunk_id, user_id, text, source_type, source_id, embedding)
       SELECT 'c-' || u.identifier || '-' || n, u.id, 'text ' || n, 'file', u.identifier || '.txt',
              array_fill(0.1, ARRAY[384])::vector
       FROM users u, generate_series(1, 3) n""",
    """INSERT INTO index_records (namespace, key, user_id, group_id, updated_at)
       SELECT u.id::text || '/documents', 'c-' || u.identifier || '-' || n, u.id,
              'file:' || u.identifier || '.txt', 1.0
       FROM users u, generate_series(1, 3) n""",
    """INSERT INTO notion_connections (user_id, token_encrypted, workspace_name)
       VALUES ('11111111-1111-1111-1111-111111111111', 'sealed', 'Acme')""",
    """INSERT INTO notion_pages (user_id, page_id, title, chunk_count)
       VALUES ('11111111-1111-1111-1111-111111111111', 'page-1', 'Onboarding', 2)""",
    """INSERT INTO notion_syncs (user_id, status) VALUES
       ('11111111-1111-1111-1111-111111111111', 'success'),
       ('22222222-2222-2222-2222-222222222222', 'failed')""",
    """INSERT INTO usage_logs (user_id, action)
       VALUES ('22222222-2222-2222-2222-222222222222', 'ask')""",
    """INSERT INTO stored_files (object_key, user_id, size, data)
       VALUES ('11111111-1111-1111-1111-111111111111/x', '11111111-1111-1111-1111-111111111111',
               1, 'x')""",
]


def test_data_migration_moves_every_row_into_its_owners_personal_space(
    pg_admin_url: str,
) -> None:
    from db.schema import alembic_config

    url = _blank_database(pg_admin_url, "kb_spaces_migration")
    engine = make_engine(url, PoolConfig(pool_size=1, max_overflow=0))
    try:
        config = alembic_config(embedding_dimension=384)
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            from alembic import command

            command.upgrade(config, "0001")
            for statement in _AT_0001:
                conn.execute(sa.text(statement))
        upgrade_to_head(engine, embedding_dimension=384)

        with engine.connect() as conn:
            spaces: dict[str, object] = dict(
                conn.execute(
                    sa.text(
                        "SELECT u.identifier, s.id FROM spaces s"
                        " JOIN users u ON u.id = s.personal_of WHERE s.kind = 'personal'"
                    )
                ).all()
            )
            assert set(spaces) == {"alice", "bob"}
            owners = conn.execute(
                sa.text(
                    "SELECT u.identifier, m.role FROM space_members m JOIN users u"
                    " ON u.id = m.user_id ORDER BY 1"
                )
            ).all()
            assert [tuple(o) for o in owners] == [("alice", "owner"), ("bob", "owner")]

            def per_space(query: str) -> dict[str, list[object]]:
                rows = conn.execute(sa.text(query)).all()
                found: dict[str, list[object]] = {}
                for space_id, value in rows:
                    who = next(k for k, v in spaces.items() if v == space_id)
                    found.setdefault(who, []).append(value)
                return {k: sorted(v, key=str) for k, v in found.items()}

            assert per_space("SELECT space_id, chunk_id FROM document_chunks") == {
                "alice": ["c-alice-1", "c-alice-2", "c-alice-3"],
                "bob": ["c-bob-1", "c-bob-2", "c-bob-3"],
            }
            assert per_space("SELECT space_id, added_by::text FROM document_chunks") == {
                "alice": ["11111111-1111-1111-1111-111111111111"] * 3,
                "bob": ["22222222-2222-2222-2222-222222222222"] * 3,
            }
            namespaces = per_space("SELECT space_id, namespace FROM index_records")
            assert namespaces == {who: [f"{spaces[who]}/documents"] * 3 for who in ("alice", "bob")}
            assert per_space("SELECT space_id, workspace_name FROM notion_connections") == {
                "alice": ["Acme"]
            }
            assert per_space("SELECT space_id, page_id FROM notion_pages") == {"alice": ["page-1"]}
            assert per_space("SELECT space_id, status FROM notion_syncs") == {
                "alice": ["success"],
                "bob": ["failed"],
            }
            # Private things stay with the person.
            assert conn.execute(sa.text("SELECT count(*) FROM usage_logs")).scalar() == 1
            assert conn.execute(sa.text("SELECT count(*) FROM stored_files")).scalar() == 1
        check_schema(engine)
    finally:
        engine.dispose()
        drop_database(pg_admin_url, url)
