"""Files dropped in the chat or sent through `/upload`: one visible step per file.

Chainlit keeps uploads in `.files/<session>/` only while the session lives, so
each file is ingested at once. Ingestion (parse, split, embed, write) is blocking
work: it runs in a worker thread and reports progress into the file's step. A bad
file becomes a failed step with its reason; the chat carries on.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import chainlit as cl
from chainlit.element import Element

from chat_app.handlers.progress import run_with_progress
from chat_app.services import Services
from chat_app.upload_route import refusal
from db.errors import KbError
from db.spaces import SpaceAccess
from ingest.files import FileResult, ingest_file
from ingest.loaders import SUPPORTED_EXTENSIONS

__all__ = ["Upload", "UploadOutcome", "ingest_uploads", "uploads_from_elements"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Upload:
    """A file as Chainlit received it: where it is, what the user called it, and why
    Chainlit refused it if it did (`chat_app/upload_route.py`)."""

    path: Path
    name: str
    size: int
    mime: str | None = None
    refused: str | None = None


@dataclass(frozen=True)
class UploadOutcome:
    name: str
    status: str  # indexed | updated | unchanged | error | refused
    chunks: int
    detail: str


def _session_files() -> Mapping[str, Any]:
    files = getattr(cl.context.session, "files", None)
    return files if isinstance(files, Mapping) else {}


def uploads_from_elements(elements: Sequence[Element]) -> list[Upload]:
    """The files attached to a message (elements with a path on disk)."""
    uploads = []
    files = _session_files()
    for element in elements:
        if not element.path:
            continue
        path = Path(element.path)
        uploads.append(
            Upload(
                path=path,
                name=element.name or path.name,
                size=path.stat().st_size if path.exists() else 0,
                mime=element.mime,
                refused=refusal(files, element.chainlit_key or element.id),
            )
        )
    return uploads


def _safe_name(name: str) -> str:
    """The user's file name without directories (it keeps its extension for the loader)."""
    cleaned = Path(name.replace("\\", "/")).name.strip() or "upload"
    return cleaned[:200]


def _ingest_one(
    upload: Upload, services: Services, user_id: uuid.UUID, space: SpaceAccess
) -> Callable[[Callable[[str], None]], FileResult]:
    options = services.ingest_options()
    name = _safe_name(upload.name)

    def work(progress: Callable[[str], None]) -> FileResult:
        embeddings = services.embeddings  # first use loads the model (seconds)
        # Chainlit stores uploads under a random id; the loader picks the format
        # from the real name, so the file is linked (or copied) next to that name.
        with tempfile.TemporaryDirectory(prefix="kb-upload-") as tmp:
            target = Path(tmp) / name
            try:
                target.hardlink_to(upload.path)
            except OSError:
                shutil.copyfile(upload.path, target)
            return ingest_file(
                target,
                engine=services.engine,
                embeddings=embeddings,
                user_id=user_id,
                space_id=space.id,
                options=options,
                display_name=name,
                progress=progress,
            )

    return work


def _describe(result: FileResult) -> tuple[str, str]:
    """(status, one line for the step) of a file's result."""
    if result.status == "error":
        return "error", f"Failed: {result.error}"
    if result.status == "unchanged":
        return (
            "unchanged",
            f"Unchanged since the last upload, skipped ({result.chunks} chunks indexed).",
        )
    if result.status == "updated":
        return "updated", (
            f"Updated: indexed {result.chunks} chunks ({result.added} new, "
            f"{result.deleted} removed, {result.skipped} unchanged)."
        )
    return "indexed", f"Indexed {result.chunks} chunks."


def _refusal(upload: Upload, name: str) -> str | None:
    """Why the file is not even read: Chainlit refused it, or it has no bytes."""
    if upload.refused:
        return upload.refused
    if upload.size == 0:
        return f"{name} is empty (0 bytes); nothing was indexed."
    return None


async def _ingest_with_step(
    upload: Upload, services: Services, user_id: uuid.UUID, space: SpaceAccess
) -> UploadOutcome:
    name = _safe_name(upload.name)
    limit = services.settings.max_file_bytes
    # Named after the file (Chainlit shows "Using <name>" / "Used <name>"), open so the
    # progress lines are visible without a click.
    async with cl.Step(name=name, type="tool", show_input=False, default_open=True) as step:
        refused = _refusal(upload, name)
        if refused:
            step.is_error = True
            step.output = f"Refused: {refused}"
            return UploadOutcome(name, "error", 0, step.output)
        if upload.size > limit:
            step.is_error = True
            step.output = (
                f"Refused: {name} is {upload.size / 2**20:.1f} MB; the limit is "
                f"{services.settings.max_file_mb:g} MB."
            )
            return UploadOutcome(name, "error", 0, step.output)

        step.output = "Parsing…"
        await step.update()

        async def show(text: str) -> None:
            step.output = text[:1].upper() + text[1:] + "…"
            await step.update()

        try:
            result = await run_with_progress(_ingest_one(upload, services, user_id, space), show)
        except KbError as exc:
            step.is_error = True
            step.output = f"Failed: {exc}"
            return UploadOutcome(name, "error", 0, step.output)
        except Exception:
            log.exception("ingesting an upload failed")
            step.is_error = True
            step.output = f"Failed: {name} could not be indexed (see the server log)."
            return UploadOutcome(name, "error", 0, step.output)
        status, line = _describe(result)
        step.is_error = status == "error"
        step.output = line
        return UploadOutcome(name, status, int(result.chunks), line)


def _summary(
    outcomes: Sequence[UploadOutcome], refused: Sequence[str], max_files: int, space: SpaceAccess
) -> str:
    good = [o for o in outcomes if o.status in ("indexed", "updated")]
    same = [o for o in outcomes if o.status == "unchanged"]
    bad = [o for o in outcomes if o.status == "error"]
    parts = []
    if good:
        chunks = sum(o.chunks for o in good)
        names = ", ".join(f"**{o.name}**" for o in good)
        where = "" if space.kind == "personal" else f" into **{space.name}**"
        parts.append(f"Indexed {names}{where} ({chunks} chunks). You can ask about it now.")
    if same:
        parts.append(
            "Already indexed, unchanged: " + ", ".join(f"**{o.name}**" for o in same) + "."
        )
    for o in bad:
        reason = o.detail.removeprefix("Failed: ").removeprefix("Refused: ")
        parts.append(f"Could not index **{o.name}**: {reason}")
    if refused:
        parts.append(
            f"Only {max_files} files per upload: not processed: "
            + ", ".join(f"**{n}**" for n in refused)
            + ". Send them again in another message."
        )
    return "\n\n".join(parts) or "No files received."


async def _refuse_reader(space: SpaceAccess, names: Sequence[str]) -> None:
    listed = "Not added: " + ", ".join(f"**{n}**" for n in names) + ". " if names else ""
    await cl.Message(
        content=f"{listed}You are a reader of **{space.name}**: only its editors and owners "
        "can add files. Upload to your personal space instead, or ask an owner of the space "
        "to make you an editor.",
        metadata={"kind": "upload"},
    ).send()


async def ingest_uploads(
    uploads: Sequence[Upload], *, services: Services, user_id: uuid.UUID, space: SpaceAccess
) -> list[UploadOutcome]:
    """Ingest each file into `space` in its own step, then post one summary message.

    A reader of the space gets one message saying so, and nothing is ingested."""
    if not space.can_write:
        await _refuse_reader(space, [_safe_name(u.name) for u in uploads])
        return [UploadOutcome(_safe_name(u.name), "refused", 0, "reader") for u in uploads]
    max_files = services.settings.max_files_per_upload
    accepted, refused = list(uploads[:max_files]), [u.name for u in uploads[max_files:]]
    outcomes = [await _ingest_with_step(u, services, user_id, space) for u in accepted]
    await cl.Message(
        content=_summary(outcomes, refused, max_files, space), metadata={"kind": "upload"}
    ).send()
    return outcomes


# Chainlit checks an upload's MIME type against the keys, then its name against the
# extensions; browsers label the same file differently (.md: text/markdown, text/plain
# or application/octet-stream), so every text-ish type lists every extension it may carry.
_TEXT_EXTENSIONS = [
    ".txt",
    ".text",
    ".md",
    ".markdown",
    ".csv",
    ".tsv",
    ".json",
    ".jsonl",
    ".ndjson",
    ".html",
    ".htm",
    ".xhtml",
]


# Binary formats: the MIME type browsers give them -> their extensions.
_OOXML = "application/vnd.openxmlformats-officedocument"
_BINARY_TYPES = {
    "application/pdf": [".pdf"],
    f"{_OOXML}.wordprocessingml.document": [".docx"],
    f"{_OOXML}.presentationml.presentation": [".pptx"],
    f"{_OOXML}.spreadsheetml.sheet": [".xlsx"],
    "application/vnd.ms-excel.sheet.macroEnabled.12": [".xlsm"],
    "application/epub+zip": [".epub"],
    "message/rfc822": [".eml"],
    "application/mbox": [".mbox"],
    "image/png": [".png"],
    "image/jpeg": [".jpg", ".jpeg"],
    "image/tiff": [".tif", ".tiff"],
}


def accepted_types() -> dict[str, list[str]]:
    """MIME type -> extensions the loaders read (`/upload` and `.chainlit/config.toml`)."""
    every = sorted("." + e.lstrip(".") for e in SUPPORTED_EXTENSIONS)
    text = [e for e in _TEXT_EXTENSIONS if e in every]
    return {
        **{
            mime: [e for e in extensions if e in every]
            for mime, extensions in _BINARY_TYPES.items()
        },
        "text/*": text,
        "application/json": [e for e in (".json", ".jsonl", ".ndjson") if e in every],
        "application/x-ndjson": [e for e in (".jsonl", ".ndjson") if e in every],
        "application/xhtml+xml": [e for e in (".xhtml", ".html", ".htm") if e in every],
        "application/octet-stream": every,
    }


async def ask_and_ingest(
    *, services: Services, user_id: uuid.UUID, space: SpaceAccess
) -> list[UploadOutcome]:
    """`/upload [space]`: ask for files (limits from the settings), then ingest them."""
    settings = services.settings
    if not space.can_write:
        await _refuse_reader(space, [])
        return []
    where = "your personal space" if space.kind == "personal" else f"**{space.name}**"
    files = await cl.AskFileMessage(
        content=(
            f"Choose up to {settings.max_files_per_upload} files "
            f"(max {settings.max_file_mb:g} MB each) to add to {where}."
        ),
        accept=accepted_types(),
        # Chainlit caps these at 100 MB and 10 files.
        max_size_mb=max(1, min(int(settings.max_file_mb), 100)),
        max_files=max(1, min(settings.max_files_per_upload, 10)),
        timeout=600,
    ).send()
    if not files:
        await cl.Message(content="No file received; nothing changed.").send()
        return []
    refused = _session_files()
    uploads = [
        Upload(
            path=Path(f.path),
            name=f.name,
            size=f.size,
            mime=f.type,
            refused=refusal(refused, f.id),
        )
        for f in files
    ]
    return await ingest_uploads(uploads, services=services, user_id=user_id, space=space)
