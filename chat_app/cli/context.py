"""How commands obtain their `Services` and the users they name."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from chat_app.services import Services, open_services
from chat_app.settings import Settings, load_settings
from db.users import require_user


@contextmanager
def cli_services(
    *, require_schema: bool = True, settings: Settings | None = None
) -> Iterator[Services]:
    services = open_services(settings or load_settings(), require_schema=require_schema)
    try:
        yield services
    finally:
        services.close()


def user_id_for(services: Services, identifier: str) -> uuid.UUID:
    """The id of the user named on the command line (clear error when unknown)."""
    with Session(services.engine) as session:
        return require_user(session=session, identifier=identifier).id
