"""What a loader may need besides the file's bytes: OCR settings, archive limits, progress.

The composition root (`chat_app`) builds `LoadOptions` from the settings; `load_file`
wraps them with the caller's progress callback in a `LoadContext` for each file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ingest.loaders.source import Extracted

__all__ = ["ArchiveLimits", "LoadContext", "LoadOptions", "OcrOptions", "Progress"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class OcrOptions:
    """Tesseract OCR for scanned PDF pages and images.

    `languages` is tesseract's `-l` value ("eng", "eng+deu"); `dpi` the resolution PDF
    pages are rendered at (tesseract is trained on ~300 dpi text); `jobs` how many pages
    of one file are recognised at once (one tesseract process each, single-threaded).
    """

    enabled: bool = True
    languages: str = "eng"
    dpi: int = 300
    jobs: int = 2


@dataclass(frozen=True)
class ArchiveLimits:
    """Zip-based formats (DOCX, XLSX, PPTX, EPUB) are refused past these, before parsing.

    `max_ratio` (expanded bytes per compressed byte, whole archive) only applies once the
    archive expands past `ratio_floor_bytes`: small, very repetitive XML is harmless.
    """

    max_expanded_bytes: int = 512 * 2**20
    max_ratio: float = 100.0
    max_members: int = 10_000
    ratio_floor_bytes: int = 16 * 2**20


@dataclass(frozen=True)
class LoadOptions:
    ocr: OcrOptions = field(default_factory=OcrOptions)
    archive: ArchiveLimits = field(default_factory=ArchiveLimits)


def _quiet(_message: str) -> None:
    pass


@dataclass(frozen=True)
class LoadContext:
    """Handed to every loader with the file.

    `load_attachment(name, data)` loads a file found inside another one (an e-mail's
    attachment) with the same rules as an upload, raising an `IngestError` when it
    cannot; None where nesting is not allowed (too deep).
    """

    options: LoadOptions = field(default_factory=LoadOptions)
    progress: Progress = _quiet
    load_attachment: Callable[[str, bytes], Extracted] | None = None
