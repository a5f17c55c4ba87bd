"""How commands obtain their `Services` and the users they name."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from chat_app.services import Services, open_services
from chat_app.settings import Settings, load_settings
from db.errors import NotFound
from db.scoped import user_scope
from db.spaces import SpaceAccess, readable_spaces
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


def space_for(services: Services, user_id: uuid.UUID, name: str | None) -> SpaceAccess:
    """The space a command works in for this user: `--space NAME` (one they are a member
    of), else their personal space."""
    with user_scope(services.engine, user_id) as conn:
        spaces = readable_spaces(conn, user_id=user_id)
    if name is None:
        return next(s for s in spaces if s.kind == "personal")
    wanted = " ".join(name.split()).lower()
    for space in spaces:
        if space.kind == "shared" and space.name.lower() == wanted:
            return space
    raise NotFound(
        f"No space named {name!r} that this user is a member of.",
        hint="See `kb spaces list --user LOGIN`.",
    )


def space_label(space: SpaceAccess, user: str) -> str:
    """How messages name a space: the user's login for their personal space."""
    return user if space.kind == "personal" else space.name
