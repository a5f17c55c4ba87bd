"""Users: case-insensitive logins, hashed passwords, disabled accounts, bcrypt from the old app."""

from __future__ import annotations

import bcrypt
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from db.errors import InvalidInput, NotFound
from db.users import add_user, authenticate, get_user, set_active, set_password


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
