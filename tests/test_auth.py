"""Password login against `users`: argon2 hashes, case-insensitive logins, disabled
accounts refused."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import chainlit as cl
import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from chat_app.auth import active_account, check_password, oauth_login, user_id_of
from db.users import set_active


def test_correct_password_logs_in_with_the_account_id(
    engine: Engine, make_user: Callable[..., Any]
) -> None:
    alice = make_user("alice", display_name="Alice A.", is_admin=True)
    user = check_password(engine, "alice", "password123")
    assert user is not None
    assert (user.identifier, user.display_name) == ("alice", "Alice A.")
    assert user.metadata == {
        "kb_user_id": str(alice.id),
        "role": "admin",
        "provider": "credentials",
    }
    assert user_id_of(user) == alice.id


def test_login_names_are_case_insensitive(engine: Engine, make_user: Callable[..., Any]) -> None:
    make_user("alice@example.com")
    user = check_password(engine, "  Alice@Example.COM ", "password123")
    assert user is not None and user.identifier == "alice@example.com"


@pytest.mark.parametrize(
    ("login", "password"),
    [
        ("alice", "wrong-password"),
        ("nobody", "password123"),
        ("alice", ""),
        ("", "password123"),
    ],
)
def test_wrong_credentials_are_refused(
    engine: Engine, make_user: Callable[..., Any], login: str, password: str
) -> None:
    make_user("alice")
    assert check_password(engine, login, password) is None


def test_disabled_users_are_refused(engine: Engine, make_user: Callable[..., Any]) -> None:
    make_user("alice")
    with Session(engine) as session:
        set_active(session=session, identifier="alice", active=False)
        session.commit()
    assert check_password(engine, "alice", "password123") is None
    assert active_account(engine, "alice", "github") is None


def test_oauth_logins_need_an_enabled_account(
    engine: Engine, make_user: Callable[..., Any]
) -> None:
    make_user("bob@example.com")
    assert active_account(engine, "bob@example.com", "github") is not None
    assert active_account(engine, "stranger@example.com", "github") is None


def test_the_password_is_never_logged(
    engine: Engine, make_user: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    make_user("alice")
    caplog.set_level("DEBUG")
    check_password(engine, "alice", "not-her-password-42")
    assert "not-her-password-42" not in caplog.text


def test_oauth_users_are_identified_by_their_persisted_id() -> None:
    account = uuid.uuid4()
    persisted = cl.PersistedUser(id=str(account), identifier="o@example.com", createdAt="")
    assert user_id_of(persisted) == account
    with pytest.raises(PermissionError):
        user_id_of(None)
    with pytest.raises(PermissionError):
        user_id_of(cl.User(identifier="header-user"))


async def test_oauth_admits_only_enabled_existing_accounts(
    engine: Engine, make_user: Callable[..., Any]
) -> None:
    bob = make_user("bob@example.com")
    make_user("carol@example.com")
    with Session(engine) as session:
        set_active(session=session, identifier="carol@example.com", active=False)
        session.commit()
    admitted = await oauth_login(engine, "google", cl.User(identifier="Bob@Example.com"))
    stranger = await oauth_login(engine, "google", cl.User(identifier="eve@example.com"))
    disabled = await oauth_login(engine, "google", cl.User(identifier="carol@example.com"))
    assert admitted is not None and user_id_of(admitted) == bob.id
    assert admitted.metadata["provider"] == "google"
    assert stranger is None and disabled is None
