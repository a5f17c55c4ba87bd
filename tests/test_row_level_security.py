"""Row-level security: a user-scoped transaction never sees another user's rows."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ProgrammingError

from db.chunks import ChunkRow, insert_chunks, list_sources
from db.scoped import rls_enforced, user_scope
from tests.fakes import MakeUser

VEC = [1.0] + [0.0] * 383


def _chunk(user_id: uuid.UUID, name: str) -> ChunkRow:
    return ChunkRow(
        chunk_id=f"{name}-{user_id}",
        user_id=user_id,
        text=f"secret of {name}",
        embedding=VEC,
        source_type="file",
        source_id=name,
        metadata={"title": name},
    )


def test_scoped_query_without_where_sees_only_own_rows(engine: Engine, make_user: MakeUser) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    with user_scope(engine, alice.id) as conn:
        insert_chunks(conn, [_chunk(alice.id, "a.txt")])
    with user_scope(engine, bob.id) as conn:
        insert_chunks(conn, [_chunk(bob.id, "b.txt")])

    assert rls_enforced(engine)
    with user_scope(engine, alice.id) as conn:
        texts = conn.execute(sa.text("SELECT text FROM document_chunks")).scalars().all()
    assert texts == ["secret of a.txt"]
    with user_scope(engine, bob.id) as conn:
        assert [s.source_id for s in list_sources(conn, user_id=bob.id)] == ["b.txt"]
        # Even asking for Alice's rows by id finds nothing.
        assert list_sources(conn, user_id=alice.id) == []


def test_scoped_transaction_cannot_write_rows_of_another_user(
    engine: Engine, make_user: MakeUser
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    with (
        pytest.raises(ProgrammingError, match="row-level security"),
        user_scope(engine, alice.id) as conn,
    ):
        insert_chunks(conn, [_chunk(bob.id, "forged.txt")])
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM document_chunks")).scalar() == 0


def test_unscoped_role_sees_nothing_through_scoped_role_without_user(
    engine: Engine, make_user: MakeUser
) -> None:
    alice = make_user("alice")
    with user_scope(engine, alice.id) as conn:
        insert_chunks(conn, [_chunk(alice.id, "a.txt")])
    with engine.begin() as conn:
        conn.execute(sa.text("SET LOCAL ROLE kb_scoped"))
        assert conn.execute(sa.text("SELECT count(*) FROM document_chunks")).scalar() == 0
