"""Ingest files: load, split, index; one `FileResult` per file, errors included.

Used by `kb ingest` and by the chat UI's uploads. Each file is indexed in its own
transaction (see `ingest.indexing`), so a bad file is reported as one line and
leaves the database as it was, and the rest of the batch goes on.

Source ids: the display name (the file name for chat uploads). For paths given on
the command line, a file named directly is known by its name and a file found by
walking a folder by its path from that folder's parent (`docs/setup/install.md`),
so files with the same name in different folders do not collide.
"""

from __future__ import annotations

import glob
import logging
import mimetypes
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from sqlalchemy.engine import Engine

from db.errors import KbError
from db.scoped import user_scope
from db.source_files import FileBytes
from ingest.errors import EmptyFile, FileTooLarge, UnreadableFile
from ingest.indexing import index_source, stored_file_hashes
from ingest.loaders import SUPPORTED_EXTENSIONS, LoadOptions, load_file
from ingest.prefetch import PrefetchedEmbeddings
from ingest.splitting import split_documents

__all__ = [
    "Discovery",
    "FileResult",
    "FileToIngest",
    "IngestOptions",
    "discover_files",
    "ingest_file",
    "ingest_files",
    "ingest_paths",
]

log = logging.getLogger(__name__)

Status = Literal["indexed", "updated", "unchanged", "error"]
Progress = Callable[[str], None]
_MARKDOWN_SUFFIXES = frozenset({".md", ".markdown", ".mdown", ".mkd"})
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class IngestOptions:
    chunk_size: int = 1000
    chunk_overlap: int = 150
    max_bytes: int = 50 * 2**20
    batch_size: int = 64
    # Chunks of several files embedded per model call by `ingest_files` (see ingest.prefetch).
    prefetch_chunks: int = 1024
    # OCR and archive limits for the loaders.
    load: LoadOptions = field(default_factory=LoadOptions)


@dataclass(frozen=True)
class FileResult:
    """What happened to one file; `error` is one line naming the file and what to do."""

    name: str
    source_id: str
    status: Status
    chunks: int = 0
    added: int = 0
    deleted: int = 0
    skipped: int = 0
    error: str | None = None
    # The error was not the file's fault (a dropped connection, a bug): trying again may
    # work. Errors people can act on (`KbError`: corrupt, encrypted, too large) are not.
    retryable: bool = False

    @property
    def ok(self) -> bool:
        return self.status != "error"


@dataclass(frozen=True)
class FileToIngest:
    path: Path
    source_id: str


@dataclass(frozen=True)
class Discovery:
    """The files a list of command-line paths names, and what was left out and why."""

    files: list[FileToIngest] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[FileResult] = field(default_factory=list)


def ingest_file(
    path: Path,
    *,
    engine: Engine,
    embeddings: Embeddings,
    user_id: uuid.UUID,
    space_id: uuid.UUID,
    options: IngestOptions,
    display_name: str | None = None,
    progress: Progress | None = None,
) -> FileResult:
    """Load, split and index one file into `space_id` as source `display_name` (default:
    its name), on behalf of `user_id` (who must be an editor of the space)."""
    name = display_name or path.name
    report = progress or _quiet
    try:
        chunks = _load_and_split(path, name, options, report)
    except Exception as exc:
        return _failure(name, exc)
    return _index(
        name,
        path,
        chunks,
        engine=engine,
        embeddings=embeddings,
        user_id=user_id,
        space_id=space_id,
        options=options,
        report=report,
    )


def ingest_paths(
    paths: Sequence[Path | str],
    *,
    engine: Engine,
    embeddings: Embeddings,
    user_id: uuid.UUID,
    space_id: uuid.UUID,
    options: IngestOptions,
    progress: Progress | None = None,
) -> list[FileResult]:
    """Ingest files, folders (recursively) and glob patterns; one result per file."""
    found = discover_files(paths)
    if progress is not None:
        for note in found.notes:
            progress(note)
    return list(found.errors) + ingest_files(
        found.files,
        engine=engine,
        embeddings=embeddings,
        user_id=user_id,
        space_id=space_id,
        options=options,
        progress=progress,
    )


def ingest_files(
    files: Sequence[FileToIngest],
    *,
    engine: Engine,
    embeddings: Embeddings,
    user_id: uuid.UUID,
    space_id: uuid.UUID,
    options: IngestOptions,
    progress: Progress | None = None,
    on_result: Callable[[FileResult], None] | None = None,
) -> list[FileResult]:
    """Ingest files in order, embedding the new chunks of several files per model call.

    Files are parsed into a window of about `options.prefetch_chunks` chunks; the
    chunks of the window's new or changed files are embedded in one call (see
    `ingest.prefetch`), then each file is indexed in its own transaction as usual.
    """
    report = progress or _quiet
    prefetched = PrefetchedEmbeddings(embeddings)
    results: dict[int, FileResult] = {}
    window: list[tuple[int, FileToIngest, list[Document]]] = []

    def done(position: int, result: FileResult) -> None:
        results[position] = result
        if on_result is not None:
            on_result(result)

    def flush() -> None:
        if not window:
            return
        try:
            _prefetch(
                window,
                prefetched,
                engine=engine,
                user_id=user_id,
                space_id=space_id,
                report=report,
            )
        except Exception:
            # Only an optimisation: each file then embeds and reports errors on its own.
            log.warning("embedding ahead failed; embedding file by file", exc_info=True)
        for position, item, chunks in window:
            done(
                position,
                _index(
                    item.source_id,
                    item.path,
                    chunks,
                    engine=engine,
                    embeddings=prefetched,
                    user_id=user_id,
                    space_id=space_id,
                    options=options,
                    report=report,
                ),
            )
        window.clear()
        prefetched.clear()

    for position, item in enumerate(files):
        try:
            chunks = _load_and_split(item.path, item.source_id, options, report)
        except Exception as exc:
            done(position, _failure(item.source_id, exc))
            continue
        window.append((position, item, chunks))
        if sum(len(c) for _, _, c in window) >= options.prefetch_chunks:
            flush()
    flush()
    return [results[position] for position in sorted(results)]


def _load_and_split(
    path: Path, name: str, options: IngestOptions, report: Progress
) -> list[Document]:
    _check_size(path, name, options.max_bytes)
    report(f"reading {name}")
    documents = load_file(
        path, display_name=name, max_bytes=options.max_bytes, options=options.load, progress=report
    )
    chunks = split_documents(
        documents,
        chunk_size=options.chunk_size,
        chunk_overlap=options.chunk_overlap,
        markdown=_is_markdown(name, documents),
    )
    if not chunks:
        # An empty chunk list would delete the source: refuse, keep the old version.
        raise EmptyFile(f"{name} has no text to index.", file_name=name)
    return chunks


def _index(
    name: str,
    path: Path,
    chunks: list[Document],
    *,
    engine: Engine,
    embeddings: Embeddings,
    user_id: uuid.UUID,
    space_id: uuid.UUID,
    options: IngestOptions,
    report: Progress,
) -> FileResult:
    report(f"indexing {name}: {len(chunks)} chunks")
    try:
        stats = index_source(
            engine=engine,
            embeddings=embeddings,
            user_id=user_id,
            space_id=space_id,
            source_type="file",
            source_id=name,
            documents=chunks,
            file=FileBytes(
                filename=Path(name).name,
                mime=mimetypes.guess_type(name)[0],
                data=path.read_bytes(),
            ),
            batch_size=options.batch_size,
            progress=lambda done, total: report(f"embedding {name}: {done}/{total} new chunks"),
        )
    except Exception as exc:  # the transaction was rolled back: the old version stays
        return _failure(name, exc)
    status: Status
    if stats.added == 0 and stats.deleted == 0:
        status = "unchanged"
    elif stats.deleted or stats.skipped:
        status = "updated"
    else:
        status = "indexed"
    return FileResult(
        name=name,
        source_id=name,
        status=status,
        chunks=len(chunks),
        added=stats.added,
        deleted=stats.deleted,
        skipped=stats.skipped,
    )


def _prefetch(
    window: Sequence[tuple[int, FileToIngest, list[Document]]],
    prefetched: PrefetchedEmbeddings,
    *,
    engine: Engine,
    user_id: uuid.UUID,
    space_id: uuid.UUID,
    report: Progress,
) -> None:
    # A file whose stored chunks carry the same file hash is unchanged: indexing will
    # skip all its chunks, so embedding them ahead would be wasted work.
    with user_scope(engine, user_id) as connection:
        stored = stored_file_hashes(
            connection,
            space_id=space_id,
            source_type="file",
            source_ids=[item.source_id for _, item, _ in window],
        )
    texts: list[str] = []
    changed = 0
    for _, item, chunks in window:
        hashes = {c.metadata.get("file_hash") for c in chunks}
        if None in hashes or stored.get(item.source_id) != hashes:
            texts.extend(c.page_content for c in chunks)
            changed += 1
    if not texts:
        return
    report(f"embedding {len(texts)} chunks of {changed} files")
    prefetched.prefetch(texts)


def _failure(name: str, exc: Exception) -> FileResult:
    if isinstance(exc, KbError):
        return FileResult(name=name, source_id=name, status="error", error=_one_line(name, exc))
    log.error("ingesting %s failed", name, exc_info=exc)
    message = (
        f"{name} could not be indexed ({type(exc).__name__}: {exc}). Nothing was changed "
        "for this file; try again, and report the error if it persists."
    )
    return FileResult(
        name=name,
        source_id=name,
        status="error",
        error=_one_line(name, message),
        retryable=True,
    )


def _quiet(_message: str) -> None:
    pass


def discover_files(paths: Sequence[Path | str]) -> Discovery:
    """Expand globs and folders into files with their source ids.

    In folders, hidden entries are ignored and unsupported types are skipped with a
    note; a file named explicitly is always returned (an unsupported one then fails
    with a clear error when ingested).
    """
    found = Discovery()
    seen_paths: set[Path] = set()
    seen_ids: dict[str, Path] = {}

    def add(path: Path, source_id: str) -> None:
        resolved = path.resolve()
        if resolved in seen_paths:
            return
        seen_paths.add(resolved)
        if source_id in seen_ids:
            found.errors.append(
                FileResult(
                    name=str(path),
                    source_id=source_id,
                    status="error",
                    error=f"{path} has the same name as {seen_ids[source_id]} in this batch "
                    f"({source_id}). Ingest it on its own, or ingest their folders so the names "
                    "include the folder.",
                )
            )
            return
        seen_ids[source_id] = path
        found.files.append(FileToIngest(path=path, source_id=source_id))

    for given in paths:
        text = str(given)
        matches = [Path(text)]
        if not Path(text).exists() and _GLOB_CHARS & set(text):
            matches = [Path(m) for m in sorted(glob.glob(text, recursive=True))]
            if not matches:
                found.errors.append(
                    FileResult(
                        name=text,
                        source_id=text,
                        status="error",
                        error=f"{text} matches no file. Check the pattern.",
                    )
                )
        for path in matches:
            if path.is_dir():
                _walk(path, add, found.notes)
            else:
                add(path, path.name)
    return found


def _walk(folder: Path, add: Callable[[Path, str], None], notes: list[str]) -> None:
    root = folder.resolve()
    base = root.parent if root.name else root
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if not _supported(path):
            notes.append(f"skipped {folder / relative} (unsupported type)")
            continue
        add(path, path.relative_to(base).as_posix())


def _supported(path: Path) -> bool:
    suffix = path.suffix.lower()
    return suffix in SUPPORTED_EXTENSIONS or suffix.lstrip(".") in SUPPORTED_EXTENSIONS


def _check_size(path: Path, name: str, max_bytes: int) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise UnreadableFile(f"{name} was not found.", file_name=name) from None
    except OSError as exc:
        raise UnreadableFile(f"{name} cannot be read ({exc.strerror}).", file_name=name) from None
    if size > max_bytes:
        raise FileTooLarge(
            f"{name} is {size / 2**20:.1f} MB, over the {max_bytes / 2**20:g} MB limit.",
            file_name=name,
        )


def _is_markdown(name: str, documents: Sequence[Document]) -> bool:
    if Path(name).suffix.lower() in _MARKDOWN_SUFFIXES:
        return True
    return any(str(d.metadata.get("format", "")).lower() in {"markdown", "md"} for d in documents)


def _one_line(name: str, error: KbError | str) -> str:
    text = " ".join(str(error).split())
    return text if name in text else f"{name}: {text}"
