"""How commands obtain settings and a runtime."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from chat_app.runtime import Runtime, open_runtime
from chat_app.settings import Settings, load_settings
from db.users import require_user


@contextmanager
def runtime(*, require_schema: bool = True, settings: Settings | None = None) -> Iterator[Runtime]:
    rt = open_runtime(settings or load_settings(), require_schema=require_schema)
    try:
        yield rt
    finally:
        rt.close()


def user_id_for(rt: Runtime, identifier: str) -> uuid.UUID:
    """The id of the user named on the command line (clear error when unknown)."""
    with Session(rt.engine) as session:
        return require_user(session=session, identifier=identifier).id
