"""Spaces in the chat: `/spaces` lists yours; owners manage members by login.

    /spaces                               your spaces and your role in each
    /spaces members NAME                  who is in a space
    /spaces add NAME LOGIN [ROLE]         owners: add someone (reader by default)
    /spaces role NAME LOGIN ROLE          owners: change a role
    /spaces remove NAME LOGIN             owners: remove someone
    /spaces create NAME                   admins: a new shared space you own

Names with blanks go in quotes. Changes run in the person's own scoped transaction,
so row-level security checks them too (owners and admins only).
"""

from __future__ import annotations

import asyncio
import shlex
import uuid
from collections.abc import Callable, Sequence
from typing import TypeVar

import chainlit as cl
from sqlalchemy.orm import Session

from chat_app.services import Services
from db import spaces as repo
from db.errors import InvalidInput, NotFound
from db.models import User
from db.scoped import user_scope, user_session
from db.spaces import NotAllowed, SpaceAccess, require_role
from db.users import require_user

__all__ = ["SPACES_HELP", "find_space", "space_label", "spaces_command", "user_spaces"]

T = TypeVar("T")

SPACES_HELP = (
    "`/spaces members NAME` · `/spaces add NAME LOGIN [reader|editor|owner]` · "
    "`/spaces role NAME LOGIN ROLE` · `/spaces remove NAME LOGIN` · `/spaces create NAME` "
    "(admins). Quote names with blanks."
)


def user_spaces(services: Services, user_id: uuid.UUID) -> list[SpaceAccess]:
    """The spaces the user can read now (blocking: call in a thread)."""
    with user_scope(services.engine, user_id) as conn:
        return repo.readable_spaces(conn, user_id=user_id)


def space_label(space: SpaceAccess) -> str:
    return "your personal space" if space.kind == "personal" else f"**{space.name}**"


def find_space(spaces: Sequence[SpaceAccess], name: str) -> SpaceAccess:
    """One of the user's spaces by name ("personal" for their own), or a clear error."""
    wanted = " ".join(name.strip().strip("\"'").split()).lower()
    for space in spaces:
        if space.kind == "personal" and wanted in ("personal", "my space", "me"):
            return space
        if space.kind == "shared" and space.name.lower() == wanted:
            return space
    names = ", ".join(f"**{s.name}**" for s in spaces if s.kind == "shared") or "none"
    raise NotFound(
        f"You have no space named {name.strip()!r}.",
        hint=f"Your shared spaces: {names}. `/spaces` lists them with your role.",
    )


def _list(spaces: Sequence[SpaceAccess]) -> str:
    lines = ["**Your spaces**", "", "| space | your role | you can |", "|---|---|---|"]
    can = {
        "reader": "ask",
        "editor": "ask, add and remove sources, Notion",
        "owner": "everything, and manage members",
    }
    for space in spaces:
        name = "Personal (only you)" if space.kind == "personal" else space.name
        lines.append(f"| {name} | {space.role} | {can[space.role]} |")
    lines += ["", "Questions search all of them unless the chat settings narrow it.", SPACES_HELP]
    return "\n".join(lines)


def _run_as(services: Services, user_id: uuid.UUID, work: Callable[[Session], T]) -> T:
    with user_session(services.engine, user_id) as session:
        return work(session)


def _members(session: Session, name: str) -> str:
    space = repo.require_space(session=session, name=name)
    rows = repo.list_members(session=session, space=space)
    lines = [f"**Members of {space.name}**", "", "| login | role | since |", "|---|---|---|"]
    lines += [f"| {m.identifier} | {m.role} | {m.added_at:%Y-%m-%d} |" for m in rows]
    return "\n".join(lines)


def _person(session: Session, login: str) -> User:
    return require_user(session=session, identifier=login)


async def spaces_command(argument: str, *, services: Services, user_id: uuid.UUID) -> cl.Message:
    """`/spaces [members|add|role|remove|create] ...`"""
    try:
        words = shlex.split(argument)
    except ValueError:
        words = argument.split()
    spaces = await asyncio.to_thread(user_spaces, services, user_id)
    verb = words[0].lower() if words else ""
    if not verb:
        text = _list(spaces)
    elif verb == "create" and len(words) == 2:
        text = await asyncio.to_thread(_create, services, user_id, words[1])
    elif verb == "members" and len(words) == 2:
        space = await _managed(services, user_id, spaces, words[1])
        text = await asyncio.to_thread(
            _run_as, services, user_id, lambda s: _members(s, space.name)
        )
    elif verb in ("add", "role", "remove") and len(words) in (3, 4):
        space = await _managed(services, user_id, spaces, words[1])
        require_role(space, "owner", action="manage its members")
        text = await asyncio.to_thread(_change, services, user_id, verb, space, words[2:])
    else:
        raise InvalidInput(f"I did not understand `/spaces {argument.strip()}`.", hint=SPACES_HELP)
    msg = cl.Message(content=text, metadata={"kind": "spaces"})
    await msg.send()
    return msg


async def _managed(
    services: Services, user_id: uuid.UUID, spaces: Sequence[SpaceAccess], name: str
) -> SpaceAccess:
    """A space of the user's by name; administrators manage every shared space."""
    try:
        space = find_space(spaces, name)
    except NotFound:
        if not await asyncio.to_thread(_is_admin, services, user_id):
            raise
        found = await asyncio.to_thread(_shared_space, services, name)
        return SpaceAccess(id=found.id, name=found.name, kind=found.kind, role="owner")
    if space.role != "owner" and await asyncio.to_thread(_is_admin, services, user_id):
        return SpaceAccess(id=space.id, name=space.name, kind=space.kind, role="owner")
    return space


def _shared_space(services: Services, name: str) -> repo.Space:
    with Session(services.engine) as session:
        return repo.require_space(session=session, name=name)


def _is_admin(services: Services, user_id: uuid.UUID) -> bool:
    with Session(services.engine) as session:
        user = session.get(User, user_id)
        return bool(user and user.is_admin and user.is_active)


def _create(services: Services, user_id: uuid.UUID, name: str) -> str:
    if not _is_admin(services, user_id):
        raise NotAllowed(
            "Only administrators create shared spaces.",
            hint="Ask an administrator (`kb spaces create NAME --owner LOGIN`).",
        )

    def create(session: Session) -> str:
        me = session.get(User, user_id)
        assert me is not None
        space = repo.create_space(session=session, name=name, owner=me, created_by=user_id)
        return (
            f"Created the shared space **{space.name}**; you are its owner. Add people with "
            f'`/spaces add "{space.name}" LOGIN editor`.'
        )

    return _run_as(services, user_id, create)


def _change(
    services: Services, user_id: uuid.UUID, verb: str, access: SpaceAccess, args: list[str]
) -> str:
    removed: list[uuid.UUID] = []

    def change(session: Session) -> str:
        space = repo.require_space(session=session, name=access.name)
        person = _person(session, args[0])
        if verb == "add":
            role = args[1] if len(args) > 1 else "reader"
            member = repo.add_member(
                session=session, space=space, user=person, role=role, added_by=user_id
            )
            return f"Added **{person.identifier}** to **{space.name}** as {member.role}."
        if verb == "role":
            if len(args) < 2:
                raise InvalidInput("Say the new role.", hint=SPACES_HELP)
            member = repo.set_role(session=session, space=space, user=person, role=args[1])
            return f"**{person.identifier}** is now {member.role} of **{space.name}**."
        repo.remove_member(session=session, space=space, user=person)
        removed.append(person.id)
        return (
            f"Removed **{person.identifier}** from **{space.name}**; they lose access at their "
            "next question."
        )

    text = _run_as(services, user_id, change)
    # "At their next question" holds with read replicas too: until a replica has
    # replayed the removal, that person's searches run on the primary.
    services.note_writes(removed)
    return text
