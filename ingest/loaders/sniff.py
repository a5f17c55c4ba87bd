"""Content sniffing: refuse a file whose bytes contradict its extension.

An HTML page saved as `.pdf` or a PNG renamed `.txt` must fail with a message that says
what the file really is, never reach a parser that would produce garbage or a stack trace.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import PurePath

import filetype

from ingest.errors import CorruptFile, EncryptedFile, UnsupportedFile
from ingest.loaders.source import SourceFile

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# Password-protected .docx/.xlsx/.pptx are OLE containers holding a stream of this name.
_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")
_HTML_STARTS = ("<!doctype html", "<html", "<head", "<body", "<meta", "<title")
# Kinds some loader reads, so a rename is all the user needs to do.
_LOADABLE_KINDS = {"pdf", "docx", "xlsx", "pptx", "epub", "image", "html", "text"}
_ZIP_KINDS = (
    ("word/document.xml", "docx", "a Word document (DOCX)", ".docx"),
    ("xl/workbook.xml", "xlsx", "an Excel workbook (XLSX)", ".xlsx"),
    ("ppt/presentation.xml", "pptx", "a PowerPoint deck (PPTX)", ".pptx"),
)
_EPUB_MIMETYPE = b"application/epub+zip"
# What zipfile raises on a damaged central directory (NotImplementedError: a version or
# compression method damaged into one it does not know).
_ZIP_ERRORS = (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError)
_IMAGE_KINDS = {"png": ".png", "jpg": ".jpg", "tif": ".tiff"}
# The binary formats: what their bytes must sniff as, how to name it, and for Office
# formats the program and its old (97-2003, OLE) format that people upload by mistake.
_BINARY_FORMATS: dict[str, tuple[str, str, tuple[str, str] | None]] = {
    "pdf": ("pdf", "a PDF", None),
    "docx": ("docx", "a Word document (DOCX)", ("Word", ".doc")),
    "xlsx": ("xlsx", "an Excel workbook (XLSX)", ("Excel", ".xls")),
    "pptx": ("pptx", "a PowerPoint deck (PPTX)", ("PowerPoint", ".ppt")),
    "epub": ("epub", "an EPUB e-book", None),
    "image": ("image", "a PNG, JPEG or TIFF image", None),
}


@dataclass(frozen=True)
class Sniffed:
    """What the bytes are: `kind` for code, `description` for people, usual extension."""

    kind: str
    description: str
    extension: str | None = None


def sniff(data: bytes) -> Sniffed:
    """Classify the bytes by their signatures, ignoring any file name."""
    # Readers accept junk before the PDF header, but a text file that merely mentions
    # "%PDF-" near its start is still text.
    if data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"%PDF-") or (
        b"%PDF-" in data[:1024] and not _looks_like_text(data)
    ):
        return Sniffed("pdf", "a PDF", ".pdf")
    if data.startswith(_OLE_MAGIC):
        if _ENCRYPTED_PACKAGE in data:
            return Sniffed("encrypted-office", "a password-protected Office document")
        return Sniffed("legacy-office", "an old-format (97-2003) Office file", ".doc")
    if data.startswith(b"PK\x03\x04"):
        return _sniff_zip(data)
    image = filetype.image_match(data[:8192])
    if image is not None and image.extension in _IMAGE_KINDS:
        return Sniffed("image", f"a {image.extension.upper()} image", _IMAGE_KINDS[image.extension])
    if _looks_like_text(data):
        head = data[:2048].decode("utf-8", "ignore").lstrip("\ufeff \t\r\n").lower()
        if head.startswith(_HTML_STARTS) or "<html" in head:
            return Sniffed("html", "an HTML page", ".html")
        return Sniffed("text", "plain text", ".txt")
    guess = filetype.guess(data)
    if guess is not None:
        return Sniffed(
            "binary", f"a {guess.extension.upper()} file ({guess.mime})", f".{guess.extension}"
        )
    return Sniffed("unknown", "unrecognised binary data")


def check_content(source: SourceFile, fmt: str) -> Sniffed:
    """Raise when `source`'s bytes cannot be the format its extension claims."""
    found = sniff(source.data)
    name = source.name
    if fmt in _BINARY_FORMATS:
        kind, expected, legacy = _BINARY_FORMATS[fmt]
        ok = found.kind == kind
        if found.kind == "encrypted-office" and legacy is not None:
            raise EncryptedFile(f"{name} is password-protected.", file_name=name)
        if found.kind == "legacy-office" and legacy is not None:
            program, old_extension = legacy
            article = "an" if fmt == "xlsx" else "a"
            raise UnsupportedFile(
                f"{name} is an old {program} 97-2003 ({old_extension}) file, not {article} "
                f"{fmt.upper()}.",
                file_name=name,
                hint=f"Open it in {program} or LibreOffice, save it as .{fmt}, and upload that.",
            )
        if found.kind == "zip-damaged" and fmt in ("docx", "xlsx", "pptx", "epub"):
            raise CorruptFile(
                f"{name} is damaged: its zip container cannot be read.", file_name=name
            )
    else:
        # Text formats: any text is acceptable (HTML in a .txt is still text); only
        # recognised binary formats are refused here, the decoder judges the rest.
        expected = "text"
        ok = found.kind in ("text", "html", "unknown")
    if ok:
        return found
    if found.kind == "unknown":
        raise CorruptFile(
            f"{name} is not a valid {fmt.upper()}: its bytes match no known format.",
            file_name=name,
        )
    if found.kind in _LOADABLE_KINDS and found.extension:
        hint = f"Rename it to {_renamed(name, found.extension)} and upload it again."
    else:
        hint = (
            "Convert it to a supported type (PDF, DOCX, PPTX, XLSX, EPUB, e-mail, image, "
            "HTML, Markdown, text, CSV, JSON) and upload that."
        )
    raise UnsupportedFile(
        f"{name} is not {expected}: its content is {found.description}.",
        file_name=name,
        hint=hint,
    )


def _renamed(name: str, extension: str) -> str:
    return PurePath(name).stem + extension


def _sniff_zip(data: bytes) -> Sniffed:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except _ZIP_ERRORS:
        return Sniffed("zip-damaged", "a damaged zip archive")
    for member, kind, description, extension in _ZIP_KINDS:
        if member in names:
            return Sniffed(kind, description, extension)
    if "mimetype" in names:
        if _mimetype(data) == _EPUB_MIMETYPE:
            return Sniffed("epub", "an EPUB e-book", ".epub")
        return Sniffed("opendocument", "an OpenDocument file", ".odt")
    return Sniffed("zip", "a zip archive", ".zip")


def _mimetype(data: bytes) -> bytes:
    """The `mimetype` member of an EPUB/OpenDocument zip, read only when it is tiny."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            info = archive.getinfo("mimetype")
            if info.file_size > 100:
                return b""
            return archive.read(info).strip()
    except (*_ZIP_ERRORS, KeyError, zlib.error, RuntimeError):
        return b""


def _looks_like_text(data: bytes) -> bool:
    """UTF-8 (or ASCII-compatible single-byte) text without NULs in the first 4 KB."""
    head = data[:4096]
    if b"\x00" in head:
        return False
    controls = sum(1 for byte in head if byte < 32 and byte not in (9, 10, 12, 13))
    return controls <= len(head) * 0.01
