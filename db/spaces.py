"""Spaces and their members: keyword-only functions that take the session explicitly.

Every user has a personal space (created with the account). Shared spaces have
members with a role: reader (ask), editor (also add and remove sources, connect and
re-sync Notion), owner (also manage members, rename, delete). The rules that keep a
space usable (a personal space has exactly its owner; a shared space keeps at least
one owner) live here, so the CLI and the chat enforce the same ones. Who may change
what is the caller's check (`require_role`) and, for scoped sessions, row-level
security's.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast, get_args

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from db.errors import InvalidInput, KbError, NotFound
from db.models import DocumentChunk, Space, SpaceMember, User

__all__ = [
    "ROLES",
    "NotAllowed",
    "Role",
    "Space",
    "SpaceAccess",
    "SpaceMemberRow",
    "SpaceSummary",
    "add_member",
    "create_personal_space",
    "create_space",
    "delete_space",
    "ensure_personal_spaces",
    "list_members",
    "list_spaces",
    "personal_space_id",
    "readable_spaces",
    "remove_member",
    "rename_space",
    "require_role",
    "require_space",
    "set_role",
    "sole_owner_of",
    "space_access",
]

Role = Literal["reader", "editor", "owner"]
ROLES: tuple[Role, ...] = get_args(Role)
PERSONAL_NAME = "Personal"


class NotAllowed(KbError):
    """The person's role in a space does not allow what they asked."""


@dataclass(frozen=True)
class SpaceAccess:
    """A space as one user sees it: which, and what they may do there."""

    id: uuid.UUID
    name: str
    kind: str  # personal | shared
    role: Role

    @property
    def can_write(self) -> bool:
        return _rank(self.role) >= _rank("editor")

    @property
    def can_manage(self) -> bool:
        return self.role == "owner"


@dataclass(frozen=True)
class SpaceMemberRow:
    identifier: str
    display_name: str | None
    role: Role
    added_at: datetime


@dataclass(frozen=True)
class SpaceSummary:
    id: uuid.UUID
    name: str
    kind: str
    members: int
    sources: int
    chunks: int
    role: Role | None  # the listed user's role, when listing for a user


def _rank(role: str) -> int:
    return ROLES.index(cast(Role, role))


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise InvalidInput(f"Unknown role {role!r}.", hint=f"Use one of: {', '.join(ROLES)}.")
    return cast(Role, role)


def require_role(access: SpaceAccess, needed: Role, *, action: str) -> None:
    """Refuse `action` in the space unless the user has at least `needed`."""
    if _rank(access.role) < _rank(needed):
        who = "editors and owners" if needed == "editor" else "its owners"
        raise NotAllowed(
            f"You are a {access.role} of {access.name!r}: only {who} can {action}.",
            hint="Ask an owner of the space for a higher role.",
        )


# -- creating and finding spaces -----------------------------------------------------


def create_personal_space(*, session: Session, user: User) -> Space:
    """The user's own space, with them as its owner (called when the account is made)."""
    space = Space(name=PERSONAL_NAME, kind="personal", personal_of=user.id, created_by=user.id)
    session.add(space)
    session.flush()
    session.add(SpaceMember(space_id=space.id, user_id=user.id, role="owner", added_by=user.id))
    session.flush()
    return space


def ensure_personal_spaces(
    connection: Connection, *, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, uuid.UUID]:
    """Give these users a personal space where they have none (bulk account imports);
    returns user id -> personal space id."""
    ids = list(user_ids)
    if ids:
        connection.execute(
            sa.insert(Space).from_select(
                ["name", "kind", "personal_of", "created_by"],
                sa.select(
                    sa.literal(PERSONAL_NAME), sa.literal("personal"), User.id, User.id
                ).where(
                    User.id.in_(ids),
                    ~sa.exists().where(Space.personal_of == User.id),
                ),
            )
        )
        connection.execute(
            pg_insert(SpaceMember)
            .from_select(
                ["space_id", "user_id", "role", "added_by"],
                sa.select(
                    Space.id, Space.personal_of, sa.literal("owner"), Space.personal_of
                ).where(Space.personal_of.in_(ids)),
            )
            .on_conflict_do_nothing()
        )
    rows = connection.execute(
        sa.select(Space.personal_of, Space.id).where(Space.personal_of.in_(ids))
    )
    return {r.personal_of: r.id for r in rows}


def create_space(
    *, session: Session, name: str, owner: User, created_by: uuid.UUID | None
) -> Space:
    """A shared space with `owner` as its first owner."""
    name = _clean_name(name)
    if _shared_by_name(session, name) is not None:
        raise InvalidInput(f"A space named {name!r} exists already.", hint="Pick another name.")
    space = Space(name=name, kind="shared", created_by=created_by)
    session.add(space)
    session.flush()
    session.add(SpaceMember(space_id=space.id, user_id=owner.id, role="owner", added_by=created_by))
    session.flush()
    return space


def _clean_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise InvalidInput("A space needs a name.")
    if len(cleaned) > 80:
        raise InvalidInput("Space names have at most 80 characters.")
    return cleaned


def _shared_by_name(session: Session, name: str) -> Space | None:
    return session.scalars(
        sa.select(Space).where(
            Space.kind == "shared", sa.func.lower(Space.name) == " ".join(name.split()).lower()
        )
    ).first()


def require_space(*, session: Session, name: str) -> Space:
    """A shared space by name (case-insensitive), or a clear error."""
    space = _shared_by_name(session, name)
    if space is None:
        raise NotFound(f"No space named {name!r}.", hint="List spaces with `kb spaces list`.")
    return space


def personal_space_id(connection: Connection | Session, *, user_id: uuid.UUID) -> uuid.UUID:
    found = connection.execute(
        sa.select(Space.id).where(Space.personal_of == user_id)
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"User {user_id} has no personal space.", hint="Run `kb setup`.")
    return found


def readable_spaces(connection: Connection | Session, *, user_id: uuid.UUID) -> list[SpaceAccess]:
    """The spaces `user_id` is a member of, personal first, then by name."""
    rows = connection.execute(
        sa.select(Space.id, Space.name, Space.kind, SpaceMember.role)
        .join(SpaceMember, SpaceMember.space_id == Space.id)
        .join(User, User.id == SpaceMember.user_id)
        .where(SpaceMember.user_id == user_id, User.is_active)
        .order_by(Space.kind != "personal", sa.func.lower(Space.name))
    )
    return [SpaceAccess(id=r.id, name=r.name, kind=r.kind, role=check_role(r.role)) for r in rows]


def space_access(
    connection: Connection | Session, *, user_id: uuid.UUID, space_id: uuid.UUID
) -> SpaceAccess:
    """The user's access to one space, or NotFound when they are not a member (a space
    a person cannot read does not exist for them)."""
    for access in readable_spaces(connection, user_id=user_id):
        if access.id == space_id:
            return access
    raise NotFound("That space does not exist or you are not a member of it.")


# -- membership ------------------------------------------------------------------------


def _membership(session: Session, space: Space, user: User) -> SpaceMember | None:
    return session.get(SpaceMember, (space.id, user.id))


def _refuse_personal(space: Space, what: str) -> None:
    if space.kind == "personal":
        raise InvalidInput(
            f"A personal space {what}.", hint="Create a shared space with `kb spaces create`."
        )


def _owners(session: Session, space: Space) -> int:
    return int(
        session.scalar(
            sa.select(sa.func.count()).where(
                SpaceMember.space_id == space.id, SpaceMember.role == "owner"
            )
        )
        or 0
    )


def add_member(
    *, session: Session, space: Space, user: User, role: str, added_by: uuid.UUID | None
) -> SpaceMember:
    _refuse_personal(space, "has no other members")
    if _membership(session, space, user) is not None:
        raise InvalidInput(
            f"{user.identifier} is a member of {space.name!r} already.",
            hint="Change the role with set-role.",
        )
    member = SpaceMember(
        space_id=space.id, user_id=user.id, role=check_role(role), added_by=added_by
    )
    session.add(member)
    session.flush()
    return member


def set_role(*, session: Session, space: Space, user: User, role: str) -> SpaceMember:
    _refuse_personal(space, "keeps its owner")
    member = _membership(session, space, user)
    if member is None:
        raise NotFound(f"{user.identifier} is not a member of {space.name!r}.")
    role = check_role(role)
    if member.role == "owner" and role != "owner" and _owners(session, space) == 1:
        raise InvalidInput(
            f"{user.identifier} is the last owner of {space.name!r}.",
            hint="Make someone else an owner first.",
        )
    member.role = role
    session.flush()
    return member


def remove_member(*, session: Session, space: Space, user: User) -> None:
    _refuse_personal(space, "keeps its owner")
    member = _membership(session, space, user)
    if member is None:
        raise NotFound(f"{user.identifier} is not a member of {space.name!r}.")
    if member.role == "owner" and _owners(session, space) == 1:
        raise InvalidInput(
            f"{user.identifier} is the last owner of {space.name!r}.",
            hint="Make someone else an owner first, or delete the space.",
        )
    session.delete(member)
    session.flush()


def sole_owner_of(*, session: Session, user_id: uuid.UUID) -> list[str]:
    """Names of the shared spaces whose only owner is this user."""
    owners = sa.select(sa.func.count()).where(
        SpaceMember.space_id == Space.id, SpaceMember.role == "owner"
    )
    return list(
        session.scalars(
            sa.select(Space.name)
            .join(SpaceMember, SpaceMember.space_id == Space.id)
            .where(
                Space.kind == "shared",
                SpaceMember.user_id == user_id,
                SpaceMember.role == "owner",
                owners.correlate(Space).scalar_subquery() == 1,
            )
            .order_by(Space.name)
        )
    )


def list_members(*, session: Session, space: Space) -> list[SpaceMemberRow]:
    rows = session.execute(
        sa.select(User.identifier, User.display_name, SpaceMember.role, SpaceMember.added_at)
        .join(User, User.id == SpaceMember.user_id)
        .where(SpaceMember.space_id == space.id)
        .order_by(
            sa.case({"owner": 0, "editor": 1, "reader": 2}, value=SpaceMember.role), User.identifier
        )
    )
    return [
        SpaceMemberRow(r.identifier, r.display_name, check_role(r.role), r.added_at) for r in rows
    ]


# -- the space itself ------------------------------------------------------------------


def rename_space(*, session: Session, space: Space, new_name: str) -> Space:
    _refuse_personal(space, "cannot be renamed")
    new_name = _clean_name(new_name)
    other = _shared_by_name(session, new_name)
    if other is not None and other.id != space.id:
        raise InvalidInput(f"A space named {new_name!r} exists already.", hint="Pick another name.")
    space.name = new_name
    space.updated_at = sa.func.now()
    session.flush()
    return space


def delete_space(*, session: Session, space: Space) -> None:
    """Delete a shared space and, by cascade, its chunks, records, files and Notion state."""
    _refuse_personal(space, "goes only with its user (kb users delete)")
    session.delete(space)
    session.flush()


def list_spaces(*, session: Session, user_id: uuid.UUID | None = None) -> list[SpaceSummary]:
    """Every space (or those `user_id` belongs to) with members, sources and chunks."""
    chunks = DocumentChunk.__table__
    members = (
        sa.select(sa.func.count())
        .where(SpaceMember.space_id == Space.id)
        .correlate(Space)
        .scalar_subquery()
    )
    counted = (
        sa.select(
            chunks.c.space_id,
            sa.func.count().label("chunks"),
            sa.func.count(sa.distinct(sa.tuple_(chunks.c.source_type, chunks.c.source_id))).label(
                "sources"
            ),
        )
        .group_by(chunks.c.space_id)
        .subquery()
    )
    role = (
        sa.select(SpaceMember.role)
        .where(SpaceMember.space_id == Space.id, SpaceMember.user_id == user_id)
        .correlate(Space)
        .scalar_subquery()
    )
    query = (
        sa.select(
            Space.id,
            Space.name,
            Space.kind,
            members.label("members"),
            sa.func.coalesce(counted.c.sources, 0).label("sources"),
            sa.func.coalesce(counted.c.chunks, 0).label("chunks"),
            role.label("role"),
        )
        .outerjoin(counted, counted.c.space_id == Space.id)
        .order_by(Space.kind != "personal", sa.func.lower(Space.name))
    )
    if user_id is not None:
        query = query.where(
            sa.exists().where(SpaceMember.space_id == Space.id, SpaceMember.user_id == user_id)
        )
    else:
        query = query.where(Space.kind == "shared")
    return [
        SpaceSummary(
            id=r.id,
            name=r.name,
            kind=r.kind,
            members=int(r.members),
            sources=int(r.sources),
            chunks=int(r.chunks),
            role=check_role(r.role) if r.role else None,
        )
        for r in session.execute(query)
    ]
