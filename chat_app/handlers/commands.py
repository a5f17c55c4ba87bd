"""What a chat offers: commands, chat settings, starters, and routing a message."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import chainlit as cl
from chainlit.input_widget import MultiSelect, Select, Slider
from chainlit.types import CommandDict

from chat_app.settings import Settings
from db.spaces import SpaceAccess
from retrieval.passages import MODES

__all__ = [
    "COMMANDS",
    "SEARCH_SPACES",
    "UPLOAD_SPACE",
    "ParsedCommand",
    "chat_settings",
    "parse_command",
    "send_chat_setup",
    "setting_label",
    "starters",
]

COMMANDS: list[CommandDict] = [
    {
        "id": "upload",
        "icon": "upload",
        "description": "Upload files: /upload [space]",
        "button": False,
        "persistent": False,
        "selected": False,
    },
    {
        "id": "sources",
        "icon": "library",
        "description": "List the sources of your spaces",
        "button": False,
        "persistent": False,
        "selected": False,
    },
    {
        "id": "forget",
        "icon": "trash-2",
        "description": "Remove a source: /forget <name>",
        "button": False,
        "persistent": False,
        "selected": False,
    },
    {
        "id": "notion",
        "icon": "book-open",
        "description": "Connect or re-sync Notion: /notion [space]",
        "button": False,
        "persistent": False,
        "selected": False,
    },
    {
        "id": "jobs",
        "icon": "list-checks",
        "description": "Your recent background jobs (uploads, syncs, removals)",
        "button": False,
        "persistent": False,
        "selected": False,
    },
    {
        "id": "spaces",
        "icon": "users",
        "description": "Your spaces; owners manage members",
        "button": False,
        "persistent": False,
        "selected": False,
    },
]
_NAMES = {c["id"] for c in COMMANDS}
SEARCH_SPACES = "search_spaces"
UPLOAD_SPACE = "upload_space"
_TYPED = re.compile(r"^/(\w+)\b\s*(.*)$", re.S)


@dataclass(frozen=True)
class ParsedCommand:
    name: str | None  # None: an ordinary question
    argument: str


def parse_command(command: str | None, content: str) -> ParsedCommand:
    """The command picked in the composer, or typed as `/name args` at the start."""
    text = (content or "").strip()
    if command in _NAMES:
        return ParsedCommand(command, text)
    match = _TYPED.match(text)
    if match and match.group(1).lower() in _NAMES:
        return ParsedCommand(match.group(1).lower(), match.group(2).strip())
    return ParsedCommand(None, text)


def chat_settings(
    settings: Settings, spaces: Sequence[SpaceAccess], chosen: dict[str, object] | None = None
) -> cl.ChatSettings:
    """Retrieval mode and depth, which spaces to search, and where uploads go."""
    chosen = chosen or {}
    modes: list[str] = list(MODES)
    mode = str(chosen.get("mode") or settings.retrieval_mode)
    top_k = chosen.get("top_k") or settings.top_k
    readable = {setting_label(s): str(s.id) for s in spaces}
    searched = [v for v in _strings(chosen.get(SEARCH_SPACES)) if v in readable.values()]
    writable = [setting_label(s) for s in spaces if s.can_write]
    upload_to = str(chosen.get(UPLOAD_SPACE) or "")
    return cl.ChatSettings(
        [
            Select(
                id="mode",
                label="Retrieval mode",
                values=modes,
                initial_index=modes.index(mode) if mode in modes else 0,
                description="hybrid = meaning + keywords; vector = meaning; keyword = exact words",
            ),
            Slider(
                id="top_k",
                label="Passages per answer (top-k)",
                initial=float(top_k),  # type: ignore[arg-type]
                min=1,
                max=20,
                step=1,
            ),
            MultiSelect(
                id=SEARCH_SPACES,
                label="Search in",
                items=readable,
                initial=searched,
                description="Spaces to answer from; none chosen = all of your spaces.",
            ),
            Select(
                id=UPLOAD_SPACE,
                label="Add uploads to",
                values=writable,
                initial_index=writable.index(upload_to) if upload_to in writable else 0,
                description="Spaces where you are an editor or owner.",
            ),
        ]
    )


def setting_label(space: SpaceAccess) -> str:
    """How the settings name a space (the personal one is "Personal")."""
    return "Personal" if space.kind == "personal" else space.name


def _strings(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list | tuple) else []


async def send_chat_setup(
    settings: Settings, spaces: Sequence[SpaceAccess], chosen: dict[str, object] | None = None
) -> None:
    """Commands and settings: sent on a new chat and again on a resumed one."""
    await cl.context.emitter.set_commands(COMMANDS)
    await chat_settings(settings, spaces, chosen).send()


def starters() -> list[cl.Starter]:
    return [
        # Both are answered from the index (retrieval.overview), with or without an LLM.
        cl.Starter(label="What is in my knowledge base?", message="What is in my knowledge base?"),
        cl.Starter(label="Upload files", message="/upload"),
        cl.Starter(label="Summarise my documents", message="Summarise my documents"),
        cl.Starter(label="Connect Notion", message="/notion"),
    ]
