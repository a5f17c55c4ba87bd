"""One `kb serve` shared by the web-security tests (starting one costs ~20 s here):
its own database copied from the migrated template, accounts made per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from db.engine import PoolConfig, make_engine
from db.models import User
from db.users import add_user
from tests.conftest import create_database, drop_database
from tests.kb_server import KbServer, running_server, serve_env

PASSWORD = "password123"


@pytest.fixture(scope="session")
def web_db(pg_admin_url: str, template_url: str) -> Iterator[str]:
    url = create_database(pg_admin_url, prefix="kb_web")
    yield url
    drop_database(pg_admin_url, url)


@pytest.fixture(scope="session")
def web_engine(web_db: str) -> Iterator[Engine]:
    engine = make_engine(web_db, PoolConfig(pool_size=2, max_overflow=2))
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def web(web_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KbServer]:
    """`kb serve` on the shared database with the default settings."""
    folder: Path = tmp_path_factory.mktemp("web")
    folder.chmod(0o755)
    with running_server(folder, serve_env(web_db, folder / "data")) as server:
        yield server


def add_account(engine: Engine, prefix: str = "user", *, password: str = PASSWORD) -> User:
    """A fresh, enabled account with a unique login."""
    with Session(engine, expire_on_commit=False) as session:
        user = add_user(
            session=session, identifier=f"{prefix}-{uuid.uuid4().hex[:8]}", password=password
        )
        session.commit()
        return user
