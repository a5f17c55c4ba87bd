"""Sessions that end: after logout, `kb users disable`, `kb users set-password` or
`kb users delete`, the old cookie gets 401 on /user and on the thread list, and the
socket refuses it; sessions last KB_SESSION_HOURS (12 h by default)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import jwt
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from db.models import LoginSession, User
from tests.cli import run_kb
from tests.kb_server import THREADS_PAGE, KbServer, chat_replies_after, socket_connects
from tests.web_fixtures import PASSWORD, add_account, web, web_db, web_engine

__all__ = ["web", "web_db", "web_engine"]  # fixtures


def _session_cookie(server: KbServer, user: User) -> str:
    client = server.login(user.identifier, PASSWORD)
    token = client.cookies.get("access_token")
    assert token
    return token


def _is_admitted(server: KbServer, token: str) -> dict[str, bool]:
    """Where the token is accepted: /user, the thread list, the socket."""
    client = server.client(cookies={"access_token": token})
    return {
        "user": client.get("/user").status_code == 200,
        "threads": client.post("/project/threads", json=THREADS_PAGE).status_code == 200,
        "socket": asyncio.run(socket_connects(server, token=token)),
    }


ALL = {"user": True, "threads": True, "socket": True}
NONE = {"user": False, "threads": False, "socket": False}


def test_a_fresh_session_is_admitted_everywhere(web: KbServer, web_engine: Engine) -> None:
    token = _session_cookie(web, add_account(web_engine, "fresh"))
    assert _is_admitted(web, token) == ALL


def test_logout_ends_the_session_at_once(web: KbServer, web_engine: Engine) -> None:
    user = add_account(web_engine, "leaver")
    client = web.login(user.identifier, PASSWORD)
    old = client.cookies.get("access_token")
    other = _session_cookie(web, user)  # the same person in another browser
    assert old
    assert client.post("/logout").status_code == 200
    assert _is_admitted(web, old) == NONE
    assert client.get("/user").status_code == 401
    # Logging out ends this session only.
    assert _is_admitted(web, other) == ALL


def test_disabling_a_user_ends_their_sessions(
    web: KbServer, web_db: str, web_engine: Engine
) -> None:
    user = add_account(web_engine, "carol")
    token = _session_cookie(web, user)
    assert _is_admitted(web, token) == ALL
    cwd = web.log_path.parent
    result = run_kb("users", "disable", user.identifier, cwd=cwd, database_url=web_db)
    assert result.returncode == 0, result.stderr
    assert _is_admitted(web, token) == NONE
    # Enabling the account again does not bring the old session back.
    result = run_kb("users", "enable", user.identifier, cwd=cwd, database_url=web_db)
    assert result.returncode == 0, result.stderr
    assert _is_admitted(web, token) == NONE
    assert _is_admitted(web, _session_cookie(web, user)) == ALL


def test_a_new_password_ends_the_sessions_of_the_old_one(
    web: KbServer, web_db: str, web_engine: Engine
) -> None:
    user = add_account(web_engine, "dave")
    token = _session_cookie(web, user)
    result = run_kb(
        "users",
        "set-password",
        user.identifier,
        "--password",
        "another-password-2",
        cwd=web.log_path.parent,
        database_url=web_db,
    )
    assert result.returncode == 0, result.stderr
    assert _is_admitted(web, token) == NONE


def test_deleting_a_user_ends_their_sessions_and_does_not_recreate_them(
    web: KbServer, web_db: str, web_engine: Engine
) -> None:
    user = add_account(web_engine, "erin")
    token = _session_cookie(web, user)
    result = run_kb(
        "users", "delete", user.identifier, "--yes", cwd=web.log_path.parent, database_url=web_db
    )
    assert result.returncode == 0, result.stderr
    assert _is_admitted(web, token) == NONE
    with web_engine.connect() as conn:
        # Chainlit creates a user row for any valid token it sees: not for this one.
        assert conn.scalar(sa.select(sa.func.count()).where(User.id == user.id)) == 0


def test_sessions_last_twelve_hours_by_default_and_expire(
    web: KbServer, web_engine: Engine
) -> None:
    user = add_account(web_engine, "frank")
    client = web.client()
    response = client.post("/login", data={"username": user.identifier, "password": PASSWORD})
    assert "Max-Age=43200" in response.headers["set-cookie"]
    token = client.cookies.get("access_token")
    assert token
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 12 * 3600
    with web_engine.begin() as conn:
        row = conn.execute(
            sa.select(LoginSession.created_at, LoginSession.expires_at).where(
                LoginSession.user_id == user.id
            )
        ).one()
        assert row.expires_at - row.created_at == timedelta(hours=12)
        # The session's time is up (as if 12 hours had passed).
        conn.execute(
            sa.update(LoginSession)
            .where(LoginSession.user_id == user.id)
            .values(expires_at=sa.func.now() - timedelta(seconds=1))
        )
    assert _is_admitted(web, token) == NONE


def test_a_token_naming_no_open_session_is_refused_even_when_well_signed(
    web: KbServer, web_engine: Engine
) -> None:
    user = add_account(web_engine, "gina")
    claims = jwt.decode(_session_cookie(web, user), options={"verify_signature": False})
    claims["metadata"]["kb_session"] = str(uuid.uuid4())
    forged = jwt.encode(claims, "not-the-secret-" + "x" * 32, algorithm="HS256")
    assert _is_admitted(web, forged) == NONE
    # Signed with the server's own secret, but no such session: still refused.
    secret = (web.log_path.parent / "data" / "chainlit_auth.secret").read_text().strip()
    assert _is_admitted(web, jwt.encode(claims, secret, algorithm="HS256")) == NONE
    del claims["metadata"]["kb_session"]  # a token from before sessions could end
    assert _is_admitted(web, jwt.encode(claims, secret, algorithm="HS256")) == NONE


def test_an_open_socket_stops_answering_after_logout(web: KbServer, web_engine: Engine) -> None:
    user = add_account(web_engine, "hank")
    client = web.login(user.identifier, PASSWORD)
    token = client.cookies.get("access_token")
    assert token

    replies = asyncio.run(
        chat_replies_after(
            web,
            token=token,
            login=user.identifier,
            question="what do my documents say?",
            before_asking=lambda: client.post("/logout"),
            until="session has ended",
        )
    )
    assert any("Your session has ended" in r for r in replies), replies
