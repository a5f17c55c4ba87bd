"""Attachments in PostgreSQL: the storage client and the route that serves them only
to the owner of a thread holding them (elements -> threads -> userId)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import chainlit.data as cl_data
import httpx
import pytest
import sqlalchemy as sa
from chainlit.auth import create_jwt
from chainlit.config import config as cl_config
from chainlit.user import User as ClUser
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_app.datalayer import build_data_layer
from chat_app.storage import (
    FILES_ROUTE,
    PostgresStorageClient,
    install_file_route,
    install_source_route,
    source_file_url,
)
from db.engine import make_async_engine


@pytest.fixture
async def storage_engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_async_engine(db_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def login_required(
    monkeypatch: pytest.MonkeyPatch, db_url: str, storage_engine: AsyncEngine
) -> None:
    """Chainlit as the app configures it: password login, JWT secret, our data layer."""
    monkeypatch.setenv("CHAINLIT_AUTH_SECRET", "test-secret-" + "x" * 40)
    monkeypatch.setattr(cl_config.code, "password_auth_callback", lambda u, p: None)
    monkeypatch.setattr(
        cl_data, "_data_layer", build_data_layer(db_url, storage_engine=storage_engine)
    )
    monkeypatch.setattr(cl_data, "_data_layer_initialized", True)


@pytest.fixture
def client_for(
    storage_engine: AsyncEngine, engine: Engine, login_required: None
) -> Callable[..., Any]:
    app = FastAPI()
    install_file_route(app, lambda: storage_engine)
    install_source_route(app, lambda: engine)

    def make(identifier: str | None) -> httpx.AsyncClient:
        headers = {}
        if identifier:
            headers["Authorization"] = "Bearer " + create_jwt(ClUser(identifier=identifier))
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test", headers=headers
        )

    return make


def _attach(engine: Engine, *, owner: uuid.UUID, object_key: str, name: str) -> None:
    """A thread of `owner` with an element pointing at `object_key` (as Chainlit writes it)."""
    thread_id = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(
            sa.text('INSERT INTO threads (id, "userId") VALUES (:t, :u)'),
            {"t": thread_id, "u": owner},
        )
        conn.execute(
            sa.text(
                'INSERT INTO elements (id, "threadId", name, "objectKey", type, display) '
                "VALUES (:id, :t, :n, :k, 'file', 'inline')"
            ),
            {"id": uuid.uuid4(), "t": thread_id, "n": name, "k": object_key},
        )


async def test_client_stores_bytes_and_returns_a_route_url(
    storage_engine: AsyncEngine, engine: Engine, make_user: Callable[..., Any]
) -> None:
    alice = make_user("alice")
    client = PostgresStorageClient(storage_engine)
    key = f"{alice.id}/{uuid.uuid4()}/report v2.pdf"
    stored = await client.upload_file(key, b"%PDF-1.4 first", mime="application/pdf")
    again = await client.upload_file(key, "second version", mime="text/plain")
    assert stored == {
        "object_key": key,
        "url": f"{FILES_ROUTE}/{alice.id}/" + key.split("/", 1)[1].replace(" ", "%20"),
    }
    assert again["object_key"] == key
    assert await client.get_read_url(key) == stored["url"]
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT data, mime, size, user_id FROM stored_files WHERE object_key = :k"),
            {"k": key},
        ).one()
    assert (bytes(row.data), row.mime, row.size, row.user_id) == (
        b"second version",
        "text/plain",
        14,
        alice.id,
    )
    assert await client.delete_file(key) is True
    assert await client.delete_file(key) is False


async def test_keeping_the_first_version_when_overwrite_is_off(
    storage_engine: AsyncEngine, engine: Engine
) -> None:
    client = PostgresStorageClient(storage_engine)
    await client.upload_file("unknown/k", b"one")
    await client.upload_file("unknown/k", b"two", overwrite=False)
    with engine.connect() as conn:
        data = conn.execute(sa.text("SELECT data FROM stored_files WHERE object_key = 'unknown/k'"))
        assert bytes(data.scalar_one()) == b"one"


async def test_owner_reads_an_attachment_of_their_thread(
    storage_engine: AsyncEngine,
    engine: Engine,
    make_user: Callable[..., Any],
    client_for: Callable[..., Any],
) -> None:
    alice = make_user("alice")
    key = f"{alice.id}/{uuid.uuid4()}/notes.txt"
    await PostgresStorageClient(storage_engine).upload_file(key, b"hello", mime="text/plain")
    _attach(engine, owner=alice.id, object_key=key, name="notes.txt")
    async with client_for("alice") as client:
        response = await client.get(f"{FILES_ROUTE}/{key}")
    assert response.status_code == 200
    assert response.content == b"hello"
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["content-disposition"].startswith("inline;")


async def test_another_user_cannot_read_it_even_knowing_the_key(
    storage_engine: AsyncEngine,
    engine: Engine,
    make_user: Callable[..., Any],
    client_for: Callable[..., Any],
) -> None:
    alice = make_user("alice")
    make_user("bob")
    key = f"{alice.id}/{uuid.uuid4()}/notes.txt"
    await PostgresStorageClient(storage_engine).upload_file(key, b"secret", mime="text/plain")
    _attach(engine, owner=alice.id, object_key=key, name="notes.txt")
    async with client_for("bob") as client:
        response = await client.get(f"{FILES_ROUTE}/{key}")
    assert response.status_code == 404
    assert b"secret" not in response.content


async def test_the_key_prefix_is_not_proof_of_ownership(
    storage_engine: AsyncEngine,
    engine: Engine,
    make_user: Callable[..., Any],
    client_for: Callable[..., Any],
) -> None:
    """A file whose key starts with bob's id but sits only in alice's thread is alice's."""
    alice, bob = make_user("alice"), make_user("bob")
    key = f"{bob.id}/{uuid.uuid4()}/moved.txt"
    await PostgresStorageClient(storage_engine).upload_file(key, b"alice's", mime="text/plain")
    _attach(engine, owner=alice.id, object_key=key, name="moved.txt")
    async with client_for("bob") as as_bob, client_for("alice") as as_alice:
        assert (await as_bob.get(f"{FILES_ROUTE}/{key}")).status_code == 404
        assert (await as_alice.get(f"{FILES_ROUTE}/{key}")).status_code == 200


async def test_a_file_in_no_thread_is_served_to_nobody(
    storage_engine: AsyncEngine, make_user: Callable[..., Any], client_for: Callable[..., Any]
) -> None:
    alice = make_user("alice")
    key = f"{alice.id}/{uuid.uuid4()}/orphan.txt"
    await PostgresStorageClient(storage_engine).upload_file(key, b"orphan")
    async with client_for("alice") as client:
        assert (await client.get(f"{FILES_ROUTE}/{key}")).status_code == 404


async def test_anonymous_requests_are_refused(
    storage_engine: AsyncEngine,
    engine: Engine,
    make_user: Callable[..., Any],
    client_for: Callable[..., Any],
) -> None:
    alice = make_user("alice")
    key = f"{alice.id}/{uuid.uuid4()}/notes.txt"
    await PostgresStorageClient(storage_engine).upload_file(key, b"hello")
    _attach(engine, owner=alice.id, object_key=key, name="notes.txt")
    async with client_for(None) as client:
        assert (await client.get(f"{FILES_ROUTE}/{key}")).status_code == 401


async def test_uploaded_html_is_downloaded_in_a_sandbox_never_rendered(
    storage_engine: AsyncEngine,
    engine: Engine,
    make_user: Callable[..., Any],
    client_for: Callable[..., Any],
) -> None:
    alice = make_user("alice")
    key = f"{alice.id}/{uuid.uuid4()}/page.html"
    await PostgresStorageClient(storage_engine).upload_file(
        key, b"<script>alert(1)</script>", mime="text/html"
    )
    _attach(engine, owner=alice.id, object_key=key, name="page.html")
    async with client_for("alice") as client:
        response = await client.get(f"{FILES_ROUTE}/{key}")
    assert response.headers["content-disposition"].startswith("attachment;")
    assert response.headers["content-security-policy"] == "sandbox"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_route_is_reached_before_chainlits_catch_all(
    storage_engine: AsyncEngine, login_required: None
) -> None:
    """Chainlit answers every unknown GET with its web page; ours must win."""
    from chainlit.server import app

    before = list(app.router.routes)
    try:
        install_file_route(app, lambda: storage_engine)
        install_file_route(app, lambda: storage_engine)  # idempotent
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        ) as client:
            ours = await client.get(f"{FILES_ROUTE}/someone/file.txt")
            page = await client.get("/some/page")
        assert ours.status_code == 401
        assert ours.headers["content-type"] == "application/json"
        assert page.headers["content-type"].startswith("text/html")
        paths = [getattr(r, "path", "") for r in app.router.routes]
        assert paths.count(f"{FILES_ROUTE}/{{object_key:path}}") == 1
    finally:
        app.router.routes[:] = before


async def test_an_indexed_file_is_served_to_members_of_its_space_only(
    engine: Engine, make_user: Callable[..., Any], client_for: Callable[..., Any]
) -> None:
    from sqlalchemy.orm import Session

    from db import spaces as repo
    from db.scoped import user_scope
    from db.source_files import FileBytes, save_source_file

    owner, reader = make_user("owner"), make_user("reader")
    make_user("outsider")
    with Session(engine) as session:
        team = repo.create_space(session=session, name="Team", owner=owner, created_by=None)
        repo.add_member(session=session, space=team, user=reader, role="reader", added_by=None)
        session.commit()
        team_id = team.id
    with user_scope(engine, owner.id) as conn:
        file_id = save_source_file(
            conn,
            space_id=team_id,
            source_id="manual.pdf",
            file=FileBytes("manual.pdf", "application/pdf", b"%PDF-1.4 manual"),
            added_by=owner.id,
        )
    url = source_file_url(file_id)
    async with (
        client_for("reader") as as_reader,
        client_for("outsider") as as_outsider,
        client_for(None) as anonymous,
    ):
        served = await as_reader.get(url)
        assert served.status_code == 200 and served.content == b"%PDF-1.4 manual"
        assert served.headers["content-disposition"].startswith("inline;")
        assert (await as_outsider.get(url)).status_code == 404
        assert (await as_outsider.get(f"{url[:-4]}abcd")).status_code == 404
        assert (await anonymous.get(url)).status_code == 401
        with Session(engine) as session:
            space = session.get(repo.Space, team_id)
            person = session.get(repo.User, reader.id)
            assert space is not None and person is not None
            repo.remove_member(session=session, space=space, user=person)
            session.commit()
        assert (await as_reader.get(url)).status_code == 404
