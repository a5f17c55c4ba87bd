"""Users: case-insensitive logins, hashed passwords, disabled accounts, bcrypt from the old app."""

from __future__ import annotations

from pathlib import Path

import bcrypt
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from db.errors import InvalidInput, NotFound
from db.users import add_user, authenticate, delete_user, get_user, set_active, set_password
from tests.fakes import MakeUser


def test_logins_are_case_insensitive_and_unique(engine: Engine) -> None:
    with Session(engine) as session:
        add_user(session=session, identifier="Alice@Example.com", password="correct horse")
        session.commit()
        assert get_user(session=session, identifier="ALICE@example.COM") is not None
        with pytest.raises(InvalidInput, match="already exists"):
            add_user(session=session, identifier="alice@example.com", password="another pw")


def test_password_is_stored_as_argon2_hash_never_plain(engine: Engine) -> None:
    with Session(engine) as session:
        add_user(session=session, identifier="bob", password="correct horse")
        session.commit()
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT password_hash FROM users")).scalar_one()
    assert stored.startswith("$argon2id$") and "correct horse" not in stored


def test_authenticate_accepts_right_password_only(engine: Engine) -> None:
    with Session(engine) as session:
        add_user(session=session, identifier="carol", password="correct horse")
        assert authenticate(session=session, identifier="CAROL", password="correct horse")
        assert authenticate(session=session, identifier="carol", password="wrong horse") is None
        assert authenticate(session=session, identifier="nobody", password="correct horse") is None


def test_disabled_user_cannot_log_in_until_enabled(engine: Engine) -> None:
    with Session(engine) as session:
        add_user(session=session, identifier="dave", password="correct horse")
        set_active(session=session, identifier="dave", active=False)
        assert authenticate(session=session, identifier="dave", password="correct horse") is None
        set_active(session=session, identifier="dave", active=True)
        assert authenticate(session=session, identifier="dave", password="correct horse")


def test_migrated_bcrypt_hash_verifies_and_is_upgraded_to_argon2(engine: Engine) -> None:
    legacy = bcrypt.hashpw(b"old password", bcrypt.gensalt(rounds=4)).decode()
    with Session(engine) as session:
        add_user(session=session, identifier="erin", password_hash=legacy)
        user = authenticate(session=session, identifier="erin", password="old password")
        assert user is not None and (user.password_hash or "").startswith("$argon2")
        assert authenticate(session=session, identifier="erin", password="old password")


def test_set_password_replaces_the_old_one(engine: Engine) -> None:
    with Session(engine) as session:
        add_user(session=session, identifier="frank", password="first password")
        set_password(session=session, identifier="frank", password="second password")
        assert authenticate(session=session, identifier="frank", password="first password") is None
        assert authenticate(session=session, identifier="frank", password="second password")
        with pytest.raises(NotFound, match="No user 'ghost'"):
            set_password(session=session, identifier="ghost", password="whatever123")
        with pytest.raises(InvalidInput, match="at least 8"):
            set_password(session=session, identifier="frank", password="short")


def test_deleting_a_user_removes_their_chats_and_attachments_only(engine: Engine) -> None:
    import uuid

    from db.models import Element, StoredFile, Thread

    with Session(engine) as session:
        alice = add_user(session=session, identifier="alice", password="password123")
        bob = add_user(session=session, identifier="bob", password="password123")
        for owner, key, recorded in (
            (alice, "alice-old", None),  # stored before owners were recorded
            (alice, "alice-new", alice.id),
            (bob, "bob-file", bob.id),
        ):
            thread = Thread(id=uuid.uuid4(), userId=owner.id, userIdentifier=owner.identifier)
            session.add(thread)
            session.flush()
            session.add(Element(id=uuid.uuid4(), threadId=thread.id, name=key, objectKey=key))
            session.add(StoredFile(object_key=key, user_id=recorded, size=1, data=b"x"))
        session.commit()
        deleted = delete_user(session=session, identifier="ALICE")
        session.commit()
        assert (deleted.identifier, deleted.chats, deleted.attachments) == ("alice", 2, 2)
        assert session.scalars(sa.select(StoredFile.object_key)).all() == ["bob-file"]
        assert session.scalars(sa.select(Thread.userIdentifier)).all() == ["bob"]
        with pytest.raises(NotFound):
            delete_user(session=session, identifier="alice")


def test_kb_users_delete_asks_for_confirmation(engine: Engine, db_url: str, tmp_path: Path) -> None:
    from tests.cli import run_kb

    with Session(engine) as session:
        add_user(session=session, identifier="carol", password="password123")
        session.commit()
    refused = run_kb("users", "delete", "carol", cwd=tmp_path, database_url=db_url)
    assert refused.returncode == 1 and "--yes" in refused.stderr
    done = run_kb("users", "delete", "carol", "--yes", cwd=tmp_path, database_url=db_url)
    assert done.returncode == 0, done.stderr
    assert "Deleted carol: 0 chats, 0 attachments" in done.stdout
    listing = run_kb("users", "list", cwd=tmp_path, database_url=db_url)
    assert "carol" not in listing.stdout


def test_deleting_the_last_owner_of_a_shared_space_is_refused(
    engine: Engine, make_user: MakeUser
) -> None:
    from db import spaces

    olivia, erin = make_user("olivia"), make_user("erin")
    with Session(engine) as session:
        team = spaces.create_space(session=session, name="Team", owner=olivia, created_by=None)
        spaces.add_member(session=session, space=team, user=erin, role="editor", added_by=None)
        session.commit()
        with pytest.raises(InvalidInput, match="last owner of 'Team'"):
            delete_user(session=session, identifier="olivia")
        # Erin is only an editor there: she can go, and the space keeps its owner.
        delete_user(session=session, identifier="erin")
        session.commit()
        assert [m.identifier for m in spaces.list_members(session=session, space=team)] == [
            "olivia"
        ]
