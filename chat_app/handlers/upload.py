"""Files dropped in the chat or sent through `/upload`: one visible step per file.

Chainlit keeps uploads in `.files/<session>/` only while the session lives, so each
file's bytes are stored in PostgreSQL at once with a job to index it, and the handler
returns: the web process never parses or embeds documents, and the person keeps
chatting. Each file's step follows its job (queued, reading, embedding n/N, indexed,
or the reason it failed); when all of them have ended, one summary message says what
can be asked about now. A reload shows the steps' stored progress and follows them
again (`chat_app/handlers/jobs.py`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import chainlit as cl
from chainlit.element import Element
from chainlit.utils import utc_now

from chat_app.handlers.jobs import follow_in_step, in_background, job_step, taken_over
from chat_app.services import Services
from chat_app.upload_route import refusal
from db.jobs import JobRow
from db.spaces import SpaceAccess
from ingest.loaders import SUPPORTED_EXTENSIONS

__all__ = [
    "Upload",
    "UploadBatch",
    "UploadOutcome",
    "ingest_uploads",
    "outcome_of",
    "upload_summary",
    "uploads_from_elements",
]

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
    status: str  # queued | indexed | updated | unchanged | error | refused | cancelled
    chunks: int
    detail: str
    job_id: int | None = None


@dataclass
class UploadBatch:
    """The files of one upload: queued at once, indexed by the workers."""

    queued: list[UploadOutcome]
    follower: asyncio.Task[list[UploadOutcome]] | None = field(default=None, repr=False)

    async def finished(self) -> list[UploadOutcome]:
        """Every file's outcome once its job has ended (the summary is posted by then)."""
        if self.follower is None:
            return self.queued
        return await self.follower


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


def outcome_of(row: JobRow) -> UploadOutcome:
    """A finished indexing job as an upload's outcome."""
    name = row.source_id or row.title
    if row.status == "done":
        status = str(row.result.get("status") or row.phase)
        return UploadOutcome(
            name, status, int(row.result.get("chunks", 0)), row.message or "", row.id
        )
    status = "cancelled" if row.status == "cancelled" else "error"
    return UploadOutcome(name, status, 0, row.message or f"Failed: {row.error}", row.id)


def _refusal(upload: Upload, name: str) -> str | None:
    """Why the file is not even read: Chainlit refused it, or it has no bytes."""
    if upload.refused:
        return upload.refused
    if upload.size == 0:
        return f"{name} is empty (0 bytes); nothing was indexed."
    return None


async def _queue_one(
    upload: Upload, services: Services, user_id: uuid.UUID, space: SpaceAccess
) -> tuple[UploadOutcome, cl.Step]:
    name = _safe_name(upload.name)
    limit = services.settings.max_file_bytes
    # Named after the file (Chainlit shows "Using <name>" / "Used <name>"), open so the
    # progress lines are visible without a click.
    step = job_step(name)
    refused = _refusal(upload, name)
    if refused is None and upload.size > limit:
        refused = (
            f"{name} is {upload.size / 2**20:.1f} MB; the limit is "
            f"{services.settings.max_file_mb:g} MB."
        )
    if refused is not None:
        step.is_error = True
        step.output = f"Refused: {refused}"
        step.end = utc_now()
        await step.send()
        return UploadOutcome(name, "error", 0, step.output), step
    step.output = "Queued…"
    await step.send()
    data = await asyncio.to_thread(upload.path.read_bytes)
    job_id = await asyncio.to_thread(
        services.job_queue().enqueue_file,
        user_id=user_id,
        space_id=space.id,
        source_id=name,
        data=data,
        origin="chat",
        mime=upload.mime,
        thread_id=step.thread_id,
        step_id=step.id,
    )
    services.metrics.uploaded(1)
    return UploadOutcome(name, "queued", 0, "Queued…", job_id), step


def upload_summary(
    outcomes: Sequence[UploadOutcome],
    space: SpaceAccess,
    refused: Sequence[str] = (),
    max_files: int = 0,
) -> str:
    """One message about the files of an upload: indexed, unchanged, failed, not taken."""
    good = [o for o in outcomes if o.status in ("indexed", "updated")]
    same = [o for o in outcomes if o.status == "unchanged"]
    bad = [o for o in outcomes if o.status in ("error", "cancelled")]
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
        if o.status == "cancelled":
            parts.append(f"**{o.name}** was cancelled; nothing of it was indexed.")
        else:
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


async def _follow(
    services: Services,
    queued: list[tuple[UploadOutcome, cl.Step]],
    refused: Sequence[str],
    space: SpaceAccess,
) -> list[UploadOutcome]:
    async def one(outcome: UploadOutcome, step: cl.Step) -> UploadOutcome:
        if outcome.job_id is None:
            return outcome
        row = await follow_in_step(services, outcome.job_id, step)
        return outcome_of(row) if row is not None and row.finished else outcome

    outcomes = list(await asyncio.gather(*(one(o, s) for o, s in queued)))
    if any(o.job_id is not None and taken_over(o.job_id) for o in outcomes):
        return outcomes  # a resumed chat follows them now and reports them there
    max_files = services.settings.max_files_per_upload
    await cl.Message(
        content=upload_summary(outcomes, space, refused, max_files), metadata={"kind": "upload"}
    ).send()
    return outcomes


async def ingest_uploads(
    uploads: Sequence[Upload], *, services: Services, user_id: uuid.UUID, space: SpaceAccess
) -> UploadBatch:
    """Queue each file for indexing into `space`, each with its own step, and return at
    once; the steps follow their jobs, and a summary message follows when all ended.

    A reader of the space gets one message saying so, and nothing is queued."""
    if not space.can_write:
        await _refuse_reader(space, [_safe_name(u.name) for u in uploads])
        return UploadBatch(
            [UploadOutcome(_safe_name(u.name), "refused", 0, "reader") for u in uploads]
        )
    max_files = services.settings.max_files_per_upload
    accepted, refused = list(uploads[:max_files]), [u.name for u in uploads[max_files:]]
    queued = [await _queue_one(u, services, user_id, space) for u in accepted]
    waiting = [o for o, _ in queued if o.job_id is not None]
    if waiting:
        names = ", ".join(f"**{o.name}**" for o in waiting)
        where = "" if space.kind == "personal" else f" into **{space.name}**"
        await cl.Message(
            content=f"Indexing {names}{where} in the background. Keep chatting: each file's "
            "step shows its progress, and a message follows when it can be asked about.",
            metadata={"kind": "upload"},
        ).send()
    follower = in_background(_follow(services, queued, refused, space))
    return UploadBatch([o for o, _ in queued], follower)


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
) -> UploadBatch:
    """`/upload [space]`: ask for files (limits from the settings), then ingest them."""
    settings = services.settings
    if not space.can_write:
        await _refuse_reader(space, [])
        return UploadBatch([])
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
        return UploadBatch([])
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
