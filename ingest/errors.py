"""Why a file could not be ingested, worded for the person who uploaded it.

Every error names the file in its message and says what to do in its hint, so the
CLI and the chat UI can show `str(error)` as one line.
"""

from __future__ import annotations

from typing import ClassVar

from db.errors import KbError

__all__ = [
    "CorruptFile",
    "EmptyFile",
    "EncryptedFile",
    "FileTooLarge",
    "IngestError",
    "NoExtractableText",
    "OcrUnavailable",
    "PossibleZipBomb",
    "UnreadableFile",
    "UnsupportedFile",
]


class IngestError(KbError):
    """A file that cannot be turned into text; `file_name` is the name the user knows."""

    default_hint: ClassVar[str | None] = None

    def __init__(self, message: str, *, file_name: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint if hint is not None else self.default_hint)
        self.file_name = file_name


class UnsupportedFile(IngestError):
    """Unknown extension, or bytes that are not what the extension says."""


class EmptyFile(IngestError):
    """Zero bytes, only whitespace, or a container with nothing in it."""

    default_hint = "Check that you picked the right file, then upload it again."


class EncryptedFile(IngestError):
    """Opening the file needs a password we do not have."""

    default_hint = "Remove the password (or export an unprotected copy) and upload it again."


class CorruptFile(IngestError):
    """The bytes claim a format but do not parse as it (truncated, damaged, invalid)."""

    default_hint = (
        "Open it in the program that made it and save or export it again, then upload the new copy."
    )


class NoExtractableText(IngestError):
    """The file is valid but holds no text we can read (scans, images only)."""

    default_hint = "Run OCR on it first (or export it with a text layer), then upload it again."


class FileTooLarge(IngestError):
    """The file is over the size limit; checked before its content is read."""

    default_hint = (
        "Split it into smaller files, or ask an administrator to raise the limit (KB_MAX_FILE_MB)."
    )


class UnreadableFile(IngestError):
    """The path does not exist, is a folder, or cannot be opened."""

    default_hint = "Check the path and its permissions."


class OcrUnavailable(IngestError):
    """The file needs OCR, but tesseract or one of its language packs is not installed."""

    default_hint = (
        "Ask an administrator to install Debian's tesseract-ocr and tesseract-ocr-eng "
        "packages (apt-get install tesseract-ocr tesseract-ocr-eng), or upload a copy with "
        "a text layer."
    )


class PossibleZipBomb(IngestError):
    """An archive-based file (DOCX, XLSX, PPTX, EPUB) that would expand far beyond reason.

    Checked on the zip's declared sizes before any member is decompressed.
    """

    default_hint = (
        "If the file is genuine, ask an administrator to raise KB_ARCHIVE_MAX_EXPANDED_MB, "
        "KB_ARCHIVE_MAX_RATIO or KB_ARCHIVE_MAX_MEMBERS."
    )
