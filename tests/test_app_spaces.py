"""`/spaces` in the chat: owners manage members by login; readers cannot."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from chat_app.handlers.spaces import spaces_command, user_spaces
from chat_app.services import Services
from db.spaces import NotAllowed
from tests.app_fixtures import app_services, chainlit_context, services

__all__ = ["app_services", "services"]  # fixtures imported for pytest


async def test_an_admin_creates_a_space_and_its_owner_manages_members(
    services: Services, make_user: Callable[..., Any]
) -> None:
    olivia = make_user("olivia", is_admin=True)
    make_user("erin")
    make_user("rita")
    async with chainlit_context(olivia):
        created = await spaces_command(
            'create "Reactor team"', services=services, user_id=olivia.id
        )
        added = await spaces_command(
            'add "Reactor team" erin editor', services=services, user_id=olivia.id
        )
        reader = await spaces_command(
            "add 'reactor TEAM' rita", services=services, user_id=olivia.id
        )
        members = await spaces_command(
            'members "Reactor team"', services=services, user_id=olivia.id
        )
    assert "Created the shared space **Reactor team**" in created.content
    assert "Added **erin** to **Reactor team** as editor" in added.content
    assert "as reader" in reader.content
    assert all(name in members.content for name in ("olivia", "erin", "rita"))
    outsider = make_user("zed")
    assert [s.name for s in user_spaces(services, outsider.id)] == ["Personal"]


async def test_a_reader_cannot_manage_members_and_a_removed_member_loses_the_space(
    services: Services, make_user: Callable[..., Any]
) -> None:
    olivia, rita = make_user("olivia", is_admin=True), make_user("rita")
    make_user("erin")
    async with chainlit_context(olivia):
        await spaces_command('create "Ops"', services=services, user_id=olivia.id)
        await spaces_command("add Ops rita reader", services=services, user_id=olivia.id)
    async with chainlit_context(rita):
        listed = await spaces_command("", services=services, user_id=rita.id)
        with pytest.raises(NotAllowed, match="only its owners can manage its members"):
            await spaces_command("add Ops erin editor", services=services, user_id=rita.id)
    assert "| Ops | reader |" in listed.content
    async with chainlit_context(olivia):
        removed = await spaces_command("remove Ops rita", services=services, user_id=olivia.id)
    assert "Removed **rita**" in removed.content
    assert [s.name for s in user_spaces(services, rita.id)] == ["Personal"]
