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
from tests.conftest import drop_database
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
    assert "gin" in indexes["document_chunks_text_tsv_gin"]


def test_tsvector_column_is_generated_from_text(engine: Engine, make_user: MakeUser) -> None:
    user = make_user("alice")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO document_chunks "
                "(chunk_id, user_id, text, source_type, source_id, embedding) "
                "VALUES ('c1', :u, 'Running databases', 'file', 's1', :v)"
            ),
            {"u": user.id, "v": "[" + ",".join(["0.1"] * 384) + "]"},
        )
        found = conn.execute(
            sa.text(
                "SELECT chunk_id FROM document_chunks "
                "WHERE text_tsv @@ plainto_tsquery('english', 'run database')"
            )
        ).scalar()
    assert found == "c1"
