"""Fixtures for the Chainlit app's tests: a Chainlit context on a mocked websocket
session (Chainlit offers nothing else for calling handlers outside a server), the
app's services on the test database, and helpers to read what was emitted."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock, Mock

import chainlit.data as cl_data
import pytest
import sqlalchemy as sa
from chainlit.context import ChainlitContext, context_var
from chainlit.session import WebsocketSession
from chainlit.user import PersistedUser
from chainlit.user_session import user_sessions
from sqlalchemy.engine import Engine

from chat_app.datalayer import build_data_layer
from chat_app.handlers.spaces import user_spaces
from chat_app.handlers.upload import Upload
from chat_app.services import Services
from chat_app.settings import Settings
from db.engine import make_async_engine
from db.models import DocumentChunk, User
from db.scoped import user_scope
from db.spaces import SpaceAccess, personal_space_id
from tests.fakes import HashEmbeddings


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings that ignore the developer's environment and `.env`."""
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "llm": None,
        "chunk_size": 400,
        "chunk_overlap": 40,
    }
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]


@pytest.fixture
def app_services(
    engine: Engine, db_url: str, fake_embeddings: HashEmbeddings, tmp_path: Path
) -> Callable[..., Services]:
    """Factory: the app's services on the test database with fake embeddings."""

    def factory(**overrides: Any) -> Services:
        return Services(
            settings=make_settings(tmp_path, **overrides),
            engine=engine,
            database_url=db_url,
            embeddings_override=fake_embeddings,
        )

    return factory


def persisted_user(user: User) -> PersistedUser:
    return PersistedUser(
        id=str(user.id),
        identifier=user.identifier,
        createdAt=user.createdAt or "",
        metadata={"kb_user_id": str(user.id)},
    )


@asynccontextmanager
async def chainlit_context(
    user: User | None, *, thread_id: str | None = None, replies: list[Any] | None = None
) -> AsyncIterator[Mock]:
    """A Chainlit context whose session records `emit` calls; `replies` answer `emit_call`
    (what the browser would send back to AskUserMessage / AskFileMessage)."""
    session = Mock(spec=WebsocketSession)
    session.id = str(uuid.uuid4())
    session.thread_id = thread_id or str(uuid.uuid4())
    session.user = persisted_user(user) if user is not None else None
    session.user_env = {}
    session.chat_settings = {}
    session.chat_profile = None
    session.http_referer = None
    session.client_type = "webapp"
    session.languages = ["en"]
    session.has_first_interaction = True
    session.thread_queues = {}
    session.files = {}
    session.files_spec = {}
    session.emit = AsyncMock()
    session.persist_file = AsyncMock(side_effect=lambda **_: {"id": str(uuid.uuid4())})
    session.emit_call = AsyncMock(side_effect=list(replies or []))
    token = context_var.set(ChainlitContext(session))
    try:
        yield session
    finally:
        await settle()
        context_var.reset(token)
        user_sessions.pop(session.id, None)


async def settle() -> None:
    """Wait for the background tasks Chainlit starts (persisting steps and elements)."""
    current = asyncio.current_task()
    while pending := [t for t in asyncio.all_tasks() if t is not current and not t.done()]:
        await asyncio.gather(*pending, return_exceptions=True)


def emitted(session: Mock, event: str) -> list[Any]:
    """Payloads of every `emit(event, payload)` call, in order."""
    return [c.args[1] for c in session.emit.call_args_list if c.args and c.args[0] == event]


def final_messages(session: Mock) -> dict[str, dict[str, Any]]:
    """Each step/message id -> its last state sent to the browser."""
    out: dict[str, dict[str, Any]] = {}
    for call in session.emit.call_args_list:
        if call.args and call.args[0] in ("new_message", "update_message", "stream_start"):
            out[call.args[1]["id"]] = call.args[1]
    return out


def outputs(session: Mock) -> list[str]:
    return [m["output"] for m in final_messages(session).values()]


@pytest.fixture
def sample_files(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "files"
    folder.mkdir()
    yield folder


REACTOR = (
    "# Zorblatt reactor\n\nThe Zorblatt reactor operates at exactly 4217 kelvin.\n\n"
    "## Cooling\n\nThe reactor is cooled by liquid xenon from the northern tank.\n"
)


def make_upload(folder: Path, name: str, content: str | bytes) -> Upload:
    # Chainlit stores uploads under a random id without extension; the name is separate.
    path = folder / uuid.uuid4().hex
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return Upload(path=path, name=name, size=path.stat().st_size)


def chunk_counts(engine: Engine, user_id: uuid.UUID) -> dict[str, int]:
    """Chunks per source in the user's personal space."""
    table = DocumentChunk.__table__
    with user_scope(engine, user_id) as conn:
        rows = conn.execute(
            sa.select(table.c.source_id, sa.func.count())
            .where(table.c.space_id == personal_space_id(conn, user_id=user_id))
            .group_by(table.c.source_id)
        ).all()
    return {r[0]: r[1] for r in rows}


@pytest.fixture
def services(app_services: Callable[..., Services]) -> Services:
    return app_services()


@pytest.fixture
def data_layer(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Chainlit's SQLAlchemy data layer as the app configures it, installed for Chainlit."""
    layer = build_data_layer(db_url, storage_engine=make_async_engine(db_url))
    monkeypatch.setattr(cl_data, "_data_layer", layer)
    monkeypatch.setattr(cl_data, "_data_layer_initialized", True)
    yield layer


def personal_access(services: Services, user_id: uuid.UUID) -> SpaceAccess:
    """The user's personal space as the chat handlers receive it."""
    return next(s for s in user_spaces(services, user_id) if s.kind == "personal")
