"""`POST /project/file` over real HTTP (FastAPI's test client): what Chainlit's own
upload route refuses still becomes a file of the message, with its reason."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chainlit.config
import pytest
from chainlit.auth import get_current_user
from chainlit.session import WebsocketSession, ws_sessions_id, ws_sessions_sid
from chainlit.user import PersistedUser
from fastapi import FastAPI
from fastapi.testclient import TestClient

from chat_app.upload_route import UPLOAD_ROUTE, install_upload_route, refusal


def _user(identifier: str) -> PersistedUser:
    return PersistedUser(id=str(uuid.uuid4()), identifier=identifier, createdAt="", metadata={})


@pytest.fixture
def session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebsocketSession]:
    """A browser's chat session as Chainlit keeps it, its uploads under tmp_path."""
    monkeypatch.setattr(chainlit.config, "FILES_DIRECTORY", tmp_path / "files")
    (tmp_path / "files").mkdir()
    ws = WebsocketSession(
        id=str(uuid.uuid4()),
        socket_id=str(uuid.uuid4()),
        emit=lambda *args: None,
        emit_call=lambda *args: None,
        user_env={},
        client_type="webapp",
        user=_user("alice"),
    )
    yield ws
    ws_sessions_id.pop(ws.id, None)
    ws_sessions_sid.pop(ws.socket_id, None)


def _client(*, ours: bool, user: str = "alice") -> TestClient:
    from chainlit.server import upload_file

    app = FastAPI()
    app.add_api_route(UPLOAD_ROUTE, upload_file, methods=["POST"])  # Chainlit's own
    if ours:
        install_upload_route(app)
    app.dependency_overrides[get_current_user] = lambda: _user(user)
    return TestClient(app, raise_server_exceptions=False)


def _upload(
    client: TestClient, session: WebsocketSession, name: str, data: bytes, mime: str
) -> Any:
    return client.post(
        UPLOAD_ROUTE, params={"session_id": session.id}, files={"file": (name, data, mime)}
    )


def test_chainlit_alone_fails_on_an_empty_file(session: WebsocketSession) -> None:
    """What the route is for; when this fails, Chainlit accepts empty files itself."""
    response = _upload(_client(ours=False), session, "empty.pdf", b"", "application/pdf")
    assert response.status_code == 500


def test_an_empty_file_becomes_an_empty_file_of_the_message(
    session: WebsocketSession, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        response = _upload(_client(ours=True), session, "empty.pdf", b"", "application/pdf")
    assert response.status_code == 200
    file_id = response.json()["id"]
    entry = session.files[file_id]
    assert (entry["name"], entry["size"], Path(entry["path"]).read_bytes()) == ("empty.pdf", 0, b"")
    assert refusal(session.files, file_id) is None  # the upload handler says "0 bytes"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


def test_a_file_the_upload_settings_refuse_carries_the_reason(session: WebsocketSession) -> None:
    response = _upload(
        _client(ours=True), session, "tool.exe", b"MZ\x90", "application/x-msdownload"
    )
    assert response.status_code == 200
    reason = refusal(session.files, response.json()["id"])
    assert reason is not None and reason.startswith("tool.exe was refused by the upload settings")


def test_a_good_file_goes_through_chainlit_unchanged(session: WebsocketSession) -> None:
    response = _upload(_client(ours=True), session, "notes.txt", b"some notes", "text/plain")
    assert response.status_code == 200
    entry = session.files[response.json()["id"]]
    assert entry["size"] == len(b"some notes") and refusal(session.files, entry["id"]) is None


def test_nobody_uploads_into_another_users_session(session: WebsocketSession) -> None:
    client = _client(ours=True, user="mallory")
    assert _upload(client, session, "empty.pdf", b"", "application/pdf").status_code == 401
    missing = client.post(
        UPLOAD_ROUTE, params={"session_id": "nope"}, files={"file": ("a.txt", b"", "text/plain")}
    )
    assert missing.status_code == 404
    assert session.files == {}
