"""The uploaded file as the loaders see it, and what a loader hands back."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.errors import EmptyFile, FileTooLarge, UnreadableFile


@dataclass(frozen=True)
class SourceFile:
    """The bytes of one file plus the name the user knows it by."""

    path: Path
    name: str
    extension: str
    data: bytes
    sha256: str


@dataclass(frozen=True)
class Part:
    """One piece of text (a PDF page, a group of CSV rows...) and its own metadata."""

    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Extracted:
    """A loader's result: the parts in order, a title if the file has one, shared metadata."""

    parts: list[Part]
    title: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def extension_of(path: Path, display_name: str | None) -> str:
    """The lower-case suffix (".pdf"), taken from the display name when it has one.

    Uploads are stored under generated names, so the name the user gave is the better witness.
    """
    if display_name:
        suffix = Path(display_name).suffix
        if suffix:
            return suffix.lower()
    return path.suffix.lower()


def read_source(path: Path, *, name: str, extension: str, max_bytes: int | None) -> SourceFile:
    """Read the file, refusing it by size before reading a byte of content."""
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise UnreadableFile(f"{name} is a folder, not a file.", file_name=name)
        if max_bytes is not None and size > max_bytes:
            raise FileTooLarge(
                f"{name} is {_human_size(size)}, over the {_human_size(max_bytes)} limit.",
                file_name=name,
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise UnreadableFile(f"{name} was not found.", file_name=name) from None
    except PermissionError:
        raise UnreadableFile(
            f"{name} cannot be opened: permission denied.", file_name=name
        ) from None
    except IsADirectoryError:
        raise UnreadableFile(f"{name} is a folder, not a file.", file_name=name) from None
    except OSError as exc:
        raise UnreadableFile(
            f"{name} cannot be read ({exc.strerror or exc}).", file_name=name
        ) from None
    if not data or data.isspace():
        what = "empty (0 bytes)" if not data else "empty (only whitespace)"
        raise EmptyFile(f"{name} is {what}.", file_name=name)
    return SourceFile(
        path=path,
        name=name,
        extension=extension,
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _human_size(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"
