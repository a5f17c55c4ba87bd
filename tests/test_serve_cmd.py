"""`kb serve` preparations: first admin, auth secret, the app's environment and root."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from chat_app.auth import check_password
from chat_app.cli.serve_cmd import (
    APP_ROOT_LINKS,
    child_environment,
    ensure_admin,
    prepare_app_root,
)
from chat_app.services import Services
from tests.app_fixtures import make_settings


@pytest.fixture
def services_for(engine: Engine, db_url: str, tmp_path: Path) -> Iterator[Callable[..., Services]]:
    def make(**overrides: Any) -> Services:
        return Services(
            settings=make_settings(tmp_path, **overrides), database_url=db_url, engine=engine
        )

    yield make


def test_first_start_creates_an_admin_with_a_one_time_password(
    services_for: Callable[..., Services], engine: Engine
) -> None:
    rt = services_for()
    password = ensure_admin(rt)
    assert password and len(password) >= 12
    assert check_password(engine, "admin", password) is not None
    assert ensure_admin(rt) is None  # never again, never printed again


def test_admin_password_from_the_environment_is_used_and_not_echoed(
    services_for: Callable[..., Services], engine: Engine
) -> None:
    rt = services_for(admin_password="chosen-password-1", admin_user="root")
    assert ensure_admin(rt) is None
    user = check_password(engine, "root", "chosen-password-1")
    assert user is not None and user.metadata["role"] == "admin"


def test_no_admin_is_added_when_users_exist(
    services_for: Callable[..., Services], make_user: Callable[..., Any], engine: Engine
) -> None:
    make_user("alice")
    assert ensure_admin(services_for()) is None
    assert check_password(engine, "admin", "anything-at-all") is None


def test_the_app_gets_the_secret_and_its_root_but_not_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("CHAINLIT_ROOT_PATH", "/kb")  # unsupported: kb's routes are at the root
    monkeypatch.setenv("KB_TOP_K", "7")
    settings = make_settings(tmp_path)
    secret = settings.persistent_secret("chainlit_auth", None)
    assert settings.persistent_secret("chainlit_auth", None) == secret  # generated once
    env = child_environment(settings, auth_secret=secret, port=8123)
    assert "CI" not in env and "CHAINLIT_ROOT_PATH" not in env
    assert env["CHAINLIT_AUTH_SECRET"] == secret
    assert env["KB_TOP_K"] == "7"
    assert env["KB_DATA_DIR"] == str(settings.resolved_data_dir)
    root = Path(env["CHAINLIT_APP_ROOT"])
    assert root.is_relative_to(settings.resolved_data_dir)
    for name, target in APP_ROOT_LINKS.items():
        if target.exists():
            assert (root / name).resolve() == target.resolve()
    assert prepare_app_root(settings, port=8123) == root  # idempotent


def test_each_server_has_its_own_upload_folder(tmp_path: Path) -> None:
    # Chainlit deletes <root>/.files when it stops: two servers on one data
    # directory must not share it.
    settings = make_settings(tmp_path)
    assert prepare_app_root(settings, port=8001) != prepare_app_root(settings, port=8002)


def test_an_external_database_without_schema_is_refused_with_the_fix(
    pg_admin_url: str, tmp_path: Path
) -> None:
    from chat_app.cli.serve_cmd import ensure_schema
    from db.engine import make_engine
    from db.errors import SchemaOutOfDate
    from tests.conftest import create_database, drop_database

    url = create_database(pg_admin_url, template="template0", prefix="kb_blank")
    engine = make_engine(url)
    try:
        rt = Services(settings=make_settings(tmp_path), database_url=url, engine=engine)
        with pytest.raises(SchemaOutOfDate) as raised:
            ensure_schema(rt)
        assert raised.value.hint == "Run `kb setup` to create or upgrade it."
    finally:
        engine.dispose()
        drop_database(pg_admin_url, url)
