"""Two `kb serve` processes on one database, as behind a load balancer: one runs the
job worker, the other is web only (`KB_WORKERS=0`). A login made on one works on the
other, a file uploaded through one is answerable through the other, and a chat started
on one is resumed and continued on the other."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import socketio
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from db.engine import PoolConfig, make_engine
from tests.conftest import create_database, drop_database
from tests.kb_server import (
    START_S,
    THREADS_PAGE,
    KbServer,
    _socket_auth,
    send_message,
    serve_env,
    start_server,
    upload_through_chat,
    wait_for,
    wait_until,
)
from tests.web_fixtures import PASSWORD, add_account

pytestmark = pytest.mark.model

REACTOR = "# Zorblatt reactor\n\nThe Zorblatt reactor runs at 451 kelvin on tuesdays.\n"
# What every process of a deployment shares (else a login on one is unknown to the other).
SHARED = {
    "CHAINLIT_AUTH_SECRET": "shared-auth-secret-for-both-web-processes-0123456789",
    "KB_SECRET_KEY": "shared-secret-key-for-notion-tokens-0123456789",
    "KB_NOTION_SYNC_INTERVAL_MINUTES": "off",
    "KB_WORKER_NICE": "0",
}


@dataclass
class Pair:
    worker: KbServer  # KB_WORKERS=1
    web: KbServer  # KB_WORKERS=0
    engine: Engine


@pytest.fixture(scope="module")
def pair(
    pg_admin_url: str, template_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    url = create_database(pg_admin_url, prefix="kb_pair")
    root = tmp_path_factory.mktemp("pair")
    root.chmod(0o755)
    extra = dict(SHARED)
    if "KB_MODELS_DIR" in os.environ:  # the session's ONNX export, made once
        extra["KB_MODELS_DIR"] = os.environ["KB_MODELS_DIR"]
    servers: list[KbServer] = []
    engine = make_engine(url, PoolConfig(pool_size=1, max_overflow=1))
    try:
        for name, workers in (("a", "1"), ("b", "0")):
            folder = root / name
            folder.mkdir()
            env = serve_env(url, folder / "data", KB_WORKERS=workers, **extra)
            servers.append(start_server(folder, env))
        for server in servers:
            wait_until(server.healthy, START_S, f"kb serve on {server.port}")
        yield Pair(worker=servers[0], web=servers[1], engine=engine)
    finally:
        for server in servers:
            server.stop()
        engine.dispose()
        drop_database(pg_admin_url, url)


@dataclass
class Chat:
    """What one chat socket saw: the chat's thread, the resumed thread, the texts."""

    thread_id: str | None = None
    resumed: dict[str, Any] | None = None
    texts: list[str] = field(default_factory=list)


async def chat(
    server: KbServer, *, token: str, login: str, question: str, until: str, thread: str | None
) -> Chat:
    """Open the chat (a new one, or `thread` resumed, as the browser does after a
    reload), ask `question` and collect the texts until one contains `until`."""
    seen = Chat()

    def text(data: dict[str, Any]) -> None:
        seen.texts.append(str(data.get("output", "")))

    def first(data: dict[str, Any]) -> None:
        seen.thread_id = seen.thread_id or str(data.get("thread_id"))

    def resumed(data: dict[str, Any]) -> None:
        seen.resumed = data

    async with aiohttp.ClientSession() as http:
        sio = socketio.AsyncClient(reconnection=False, http_session=http)
        for event in ("new_message", "update_message"):
            sio.on(event, text)
        sio.on("first_interaction", first)
        sio.on("resume_thread", resumed)
        await sio.connect(
            server.base,
            socketio_path="/ws/socket.io",
            transports=["websocket"],
            headers={"Cookie": f"access_token={token}"},
            auth={**_socket_auth(), "threadId": thread},
            wait_timeout=60,
        )
        await sio.emit("connection_successful")
        await wait_for(lambda: thread is None or seen.resumed is not None)
        await send_message(sio, login=login, question=question, thread_id=thread or "")
        await wait_for(lambda: any(until in t for t in seen.texts))
        await sio.disconnect()
    return seen


def job_status(engine: Engine, name: str) -> str | None:
    with engine.begin() as conn:
        return conn.execute(
            sa.text("SELECT status FROM jobs WHERE source_id = :name"), {"name": name}
        ).scalar()


def thread_outputs(server: KbServer, token: str, thread_id: str) -> list[str]:
    with server.client(cookies={"access_token": token}) as client:
        response = client.get(f"/project/thread/{thread_id}")
        assert response.status_code == 200, response.text
        return [str(s.get("output", "")) for s in response.json()["steps"]]


def test_an_upload_through_one_process_is_answered_by_the_other_and_chats_move_between_them(
    pair: Pair,
) -> None:
    person = add_account(pair.engine, "pair")
    token = pair.worker.login(person.identifier, PASSWORD).cookies.get("access_token")
    assert token
    name = f"reactor-{uuid.uuid4().hex[:6]}.md"
    asyncio.run(
        upload_through_chat(
            pair.worker,
            token=token,
            login=person.identifier,
            name=name,
            data=REACTOR.encode(),
            mime="text/markdown",
        )
    )
    wait_until(lambda: job_status(pair.engine, name) == "done", 600, "the upload's job")

    # The web-only process answers from what the other one indexed, with its cookie.
    started = asyncio.run(
        chat(
            pair.web,
            token=token,
            login=person.identifier,
            question="At what temperature does the Zorblatt reactor run?",
            until="451 kelvin",
            thread=None,
        )
    )
    assert any("451 kelvin" in t for t in started.texts), started.texts
    assert started.thread_id

    # The chat started on the web-only process, listed and resumed on the other one.
    with pair.worker.client(cookies={"access_token": token}) as client:
        listed = client.post("/project/threads", json=THREADS_PAGE)
    assert started.thread_id in [t["id"] for t in listed.json()["data"]]
    continued = asyncio.run(
        chat(
            pair.worker,
            token=token,
            login=person.identifier,
            question="On which day does the Zorblatt reactor run at 451 kelvin?",
            until="tuesdays",
            thread=started.thread_id,
        )
    )
    assert continued.resumed is not None and continued.resumed["id"] == started.thread_id
    assert any("tuesdays" in t for t in continued.texts), continued.texts

    outputs = thread_outputs(pair.web, token, started.thread_id)
    questions = [o for o in outputs if o.endswith("?")]
    assert questions == [
        "At what temperature does the Zorblatt reactor run?",
        "On which day does the Zorblatt reactor run at 451 kelvin?",
    ]
    assert sum("451 kelvin" in o and not o.endswith("?") for o in outputs) >= 1
