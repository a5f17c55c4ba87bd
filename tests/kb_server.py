"""`kb serve` in a subprocess on a free loopback port, for tests over real HTTP and
socket.io: start it, wait for /health, log in, open sockets, stop it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import socketio

from tests.pg_tcp import free_port

KB = Path(sys.executable).with_name("kb")
START_S = 180


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` until it holds (bounded so a broken start fails, not hangs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def serve_env(database_url: str | None, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env.pop("DATABASE_URL", None)
    env.pop("CI", None)  # Chainlit's --ci mode
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    env.update(KB_DATA_DIR=str(data_dir), KB_ADMIN_PASSWORD="admin-password-1", KB_LLM="", **extra)
    return env


@dataclass
class KbServer:
    """A running `kb serve`: its base URL, process and log."""

    base: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=120, **kwargs)

    def login(self, login: str, password: str) -> httpx.Client:
        """A client holding the session cookie of a successful login."""
        client = self.client()
        response = client.post("/login", data={"username": login, "password": password})
        assert response.status_code == 200, response.text
        return client

    def healthy(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"kb serve exited:\n{self.log()}")
        try:
            return httpx.get(f"{self.base}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> int:
        """SIGTERM (as a service manager would) and wait; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return int(self.process.returncode)


def start_server(
    cwd: Path, env: dict[str, str], *, port: int | None = None, log_name: str = "serve.log"
) -> KbServer:
    port = port or free_port()
    log_path = cwd / log_name
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [str(KB), "serve", "--port", str(port)],
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return KbServer(base=f"http://127.0.0.1:{port}", port=port, process=process, log_path=log_path)


@contextmanager
def running_server(cwd: Path, env: dict[str, str], **kwargs: Any) -> Iterator[KbServer]:
    server = start_server(cwd, env, **kwargs)
    try:
        wait_until(server.healthy, START_S, "kb serve to answer /health")
        yield server
    finally:
        server.stop()


async def socket_connects(
    server: KbServer, *, token: str | None, origin: str | None = None, transport: str = "websocket"
) -> bool:
    """Whether Chainlit's socket.io endpoint accepts a connection with this cookie."""
    async with aiohttp.ClientSession() as http:
        client = socketio.AsyncClient(reconnection=False, http_session=http)
        headers = {"Cookie": f"access_token={token}"} if token else {}
        if origin:
            headers["Origin"] = origin
        return await _connects(client, server, headers, transport)


def _socket_auth() -> dict[str, Any]:
    """What Chainlit's web client sends when it opens a new chat's socket."""
    return {
        "sessionId": str(uuid.uuid4()),
        "clientType": "webapp",
        "userEnv": "{}",
        "chatProfile": None,
        "threadId": None,
    }


async def _connect(
    client: socketio.AsyncClient, server: KbServer, headers: dict[str, str], transport: str
) -> None:
    await client.connect(
        server.base,
        socketio_path="/ws/socket.io",
        transports=[transport],
        headers=headers,
        auth=_socket_auth(),
        wait_timeout=60,
    )


async def _connects(
    client: socketio.AsyncClient, server: KbServer, headers: dict[str, str], transport: str
) -> bool:
    try:
        await _connect(client, server, headers, transport)
    except socketio.exceptions.ConnectionError:
        return False
    await client.disconnect()
    return True


async def chat_replies_after(
    server: KbServer,
    *,
    token: str,
    login: str,
    question: str,
    before_asking: Callable[[], object],
    until: str,
) -> list[str]:
    """Open a chat socket, run `before_asking` (in a thread: it may block), ask
    `question`, and collect the chat's messages until one contains `until` (or two
    minutes pass, so a broken server fails the test's assertion, not a hang)."""
    replies: list[str] = []
    async with aiohttp.ClientSession() as http:
        sio = socketio.AsyncClient(reconnection=False, http_session=http)
        sio.on("new_message", lambda data: replies.append(str(data.get("output", ""))))
        await _connect(sio, server, {"Cookie": f"access_token={token}"}, "websocket")
        await asyncio.to_thread(before_asking)
        await send_message(sio, login=login, question=question, thread_id=str(uuid.uuid4()))
        await wait_for(lambda: any(until in r for r in replies))
        await sio.disconnect()
    return replies


async def send_message(
    sio: socketio.AsyncClient,
    *,
    login: str,
    question: str,
    thread_id: str,
    files: list[dict[str, Any]] | None = None,
) -> None:
    """Send `question` (and the uploaded `files`) as `login`'s chat message, as the
    page does."""
    message = {
        "id": str(uuid.uuid4()),
        "threadId": thread_id,
        "name": login,
        "type": "user_message",
        "output": question,
        "createdAt": "2026-01-01T00:00:00Z",
    }
    await sio.emit("client_message", {"message": message, "fileReferences": files})


async def wait_for(done: Callable[[], bool]) -> None:
    """Until `done()`, or two minutes pass (so a broken server fails the test's
    assertion, not a hang)."""
    for _ in range(1200):
        if done():
            return
        await asyncio.sleep(0.1)


THREADS_PAGE = {"pagination": {"first": 20}, "filter": {}}


async def upload_through_chat(
    server: KbServer, *, token: str, login: str, name: str, data: bytes, mime: str
) -> str:
    """Upload one file as the browser does (`POST /project/file` for the chat's session,
    then a message referring to it); returns the chat's thread id. The file is queued:
    the caller waits for its job."""
    session_id, thread_id = str(uuid.uuid4()), str(uuid.uuid4())
    async with aiohttp.ClientSession() as http:
        sio = socketio.AsyncClient(reconnection=False, http_session=http)
        await sio.connect(
            server.base,
            socketio_path="/ws/socket.io",
            transports=["websocket"],
            headers={"Cookie": f"access_token={token}"},
            auth={**_socket_auth(), "sessionId": session_id},
            wait_timeout=60,
        )
        async with httpx.AsyncClient(base_url=server.base, timeout=120) as client:
            response = await client.post(
                "/project/file",
                params={"session_id": session_id},
                files={"file": (name, data, mime)},
                cookies={"access_token": token},
            )
        assert response.status_code == 200, response.text
        queued: list[str] = []
        for event in ("new_message", "update_message"):
            sio.on(event, lambda step: queued.append(f"{step.get('name')}: {step.get('output')}"))
        await send_message(
            sio, login=login, question="", thread_id=thread_id, files=[response.json()]
        )
        # Until the chat shows the queued file's step.
        await wait_for(lambda: any(q.startswith(f"{name}: ") for q in queued))
        await sio.disconnect()
    return thread_id
