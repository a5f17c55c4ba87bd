"""Row-level security proves space membership with no WHERE clause at all."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.orm import Session

from db import spaces as repo
from db.chunks import ChunkRow, insert_chunks, list_sources
from db.models import Space, User
from db.notion import save_connection, save_page, start_sync
from db.scoped import rls_enforced, user_scope
from db.source_files import FileBytes, save_source_file
from ingest.record_manager import PgRecordManager
from tests.conftest import personal_space
from tests.fakes import MakeUser

VEC = [1.0] + [0.0] * 383
_ALL_TEXTS = sa.text("SELECT text FROM document_chunks ORDER BY text")
_SPACE_TABLES = (
    "document_chunks",
    "index_records",
    "source_files",
    "notion_connections",
    "notion_pages",
    "notion_syncs",
)


def _chunk(space_id: uuid.UUID, added_by: uuid.UUID, name: str) -> ChunkRow:
    return ChunkRow(
        chunk_id=f"{name}-{space_id}",
        space_id=space_id,
        added_by=added_by,
        text=f"secret of {name}",
        embedding=VEC,
        source_type="file",
        source_id=name,
        metadata={"title": name},
    )


def _shared(engine: Engine, owner: User, name: str = "Team") -> uuid.UUID:
    with Session(engine) as session:
        space = repo.create_space(session=session, name=name, owner=owner, created_by=owner.id)
        session.commit()
        return space.id


def _member(engine: Engine, space_id: uuid.UUID, user: User, role: str) -> None:
    with Session(engine) as session:
        space = session.get(Space, space_id)
        assert space is not None
        repo.add_member(session=session, space=space, user=user, role=role, added_by=None)
        session.commit()


def _texts(engine: Engine, user: User) -> list[str]:
    with user_scope(engine, user.id) as conn:
        return list(conn.execute(_ALL_TEXTS).scalars())


def test_scoped_query_without_where_sees_only_the_users_spaces(
    engine: Engine, make_user: MakeUser
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    with user_scope(engine, alice.id) as conn:
        insert_chunks(conn, [_chunk(personal_space(engine, alice.id), alice.id, "a.txt")])
    with user_scope(engine, bob.id) as conn:
        insert_chunks(conn, [_chunk(personal_space(engine, bob.id), bob.id, "b.txt")])

    assert rls_enforced(engine)
    assert _texts(engine, alice) == ["secret of a.txt"]
    with user_scope(engine, bob.id) as conn:
        mine = list_sources(conn, space_ids=[personal_space(engine, bob.id)])
        assert [s.source_id for s in mine] == ["b.txt"]
        assert mine[0].added_by == "bob"
        # Even asking for Alice's space by id finds nothing.
        assert list_sources(conn, space_ids=[personal_space(engine, alice.id)]) == []


def test_a_non_member_sees_nothing_of_a_shared_space(engine: Engine, make_user: MakeUser) -> None:
    owner, outsider = make_user("owner"), make_user("outsider")
    team = _shared(engine, owner)
    with user_scope(engine, owner.id) as conn:
        insert_chunks(conn, [_chunk(team, owner.id, "handbook.pdf")])
        PgRecordManager(connection=conn, space_id=team).update(["k1"], group_ids=["file:h"])
        save_source_file(
            conn,
            space_id=team,
            source_id="handbook.pdf",
            file=FileBytes("handbook.pdf", "application/pdf", b"%PDF-1.4"),
            added_by=owner.id,
        )
    assert _texts(engine, owner) == ["secret of handbook.pdf"]
    with user_scope(engine, outsider.id) as conn:
        for table in (*_SPACE_TABLES, "spaces", "space_members"):
            counted = conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()
            # The outsider's own personal space and membership are all they see.
            assert counted == (1 if table in ("spaces", "space_members") else 0), table


def test_a_reader_reads_but_cannot_insert_or_delete_chunks(
    engine: Engine, make_user: MakeUser
) -> None:
    owner, reader = make_user("owner"), make_user("reader")
    team = _shared(engine, owner)
    _member(engine, team, reader, "reader")
    with user_scope(engine, owner.id) as conn:
        insert_chunks(conn, [_chunk(team, owner.id, "handbook.pdf")])

    assert _texts(engine, reader) == ["secret of handbook.pdf"]
    with (
        pytest.raises(ProgrammingError, match="row-level security"),
        user_scope(engine, reader.id) as conn,
    ):
        insert_chunks(conn, [_chunk(team, reader.id, "forged.txt")])
    with user_scope(engine, reader.id) as conn:
        assert conn.execute(sa.text("DELETE FROM document_chunks")).rowcount == 0
        assert conn.execute(sa.text("UPDATE document_chunks SET text = 'x'")).rowcount == 0
    assert _texts(engine, owner) == ["secret of handbook.pdf"]


def test_an_editor_writes_and_a_removed_member_loses_access_at_once(
    engine: Engine, make_user: MakeUser
) -> None:
    owner, editor = make_user("owner"), make_user("editor")
    team = _shared(engine, owner)
    _member(engine, team, editor, "editor")
    with user_scope(engine, editor.id) as conn:
        insert_chunks(conn, [_chunk(team, editor.id, "notes.md")])
    assert _texts(engine, owner) == ["secret of notes.md"]

    with Session(engine) as session:
        space = session.get(Space, team)
        person = session.get(User, editor.id)
        assert space is not None and person is not None
        repo.remove_member(session=session, space=space, user=person)
        session.commit()
    assert _texts(engine, editor) == []
    with (
        pytest.raises(ProgrammingError, match="row-level security"),
        user_scope(engine, editor.id) as conn,
    ):
        insert_chunks(conn, [_chunk(team, editor.id, "more.md")])


def test_deleting_a_space_removes_its_chunks_records_files_and_notion_state(
    engine: Engine, make_user: MakeUser
) -> None:
    owner = make_user("owner")
    team = _shared(engine, owner)
    keep = personal_space(engine, owner.id)
    with user_scope(engine, owner.id) as conn:
        insert_chunks(conn, [_chunk(team, owner.id, "t.txt"), _chunk(keep, owner.id, "k.txt")])
        PgRecordManager(connection=conn, space_id=team).update(["k1"], group_ids=["file:t"])
        save_source_file(
            conn,
            space_id=team,
            source_id="t.txt",
            file=FileBytes("t.txt", None, b"t"),
            added_by=None,
        )
        save_connection(
            conn,
            space_id=team,
            connected_by=owner.id,
            token_encrypted=b"sealed",
            workspace_name="Acme",
            bot_id=None,
        )
        save_page(
            conn,
            space_id=team,
            page_id="p1",
            title="P",
            url=None,
            parent_id=None,
            last_edited_time=None,
            chunk_count=1,
            status="indexed",
        )
        start_sync(conn, space_id=team, started_by=owner.id)

    with Session(engine) as session:
        space = session.get(Space, team)
        assert space is not None
        repo.delete_space(session=session, space=space)
        session.commit()

    with engine.connect() as conn:
        for table in _SPACE_TABLES:
            left = conn.execute(
                sa.text(f"SELECT count(*) FROM {table} WHERE space_id = :s"), {"s": team}
            ).scalar()
            assert left == 0, table
    assert _texts(engine, owner) == ["secret of k.txt"]


def test_scoped_role_without_user_sees_nothing(engine: Engine, make_user: MakeUser) -> None:
    alice = make_user("alice")
    with user_scope(engine, alice.id) as conn:
        insert_chunks(conn, [_chunk(personal_space(engine, alice.id), alice.id, "a.txt")])
    with engine.begin() as conn:
        conn.execute(sa.text("SET LOCAL ROLE kb_scoped"))
        assert conn.execute(sa.text("SELECT count(*) FROM document_chunks")).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM spaces")).scalar() == 0
