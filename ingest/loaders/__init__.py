"""Turn one uploaded file into LangChain Documents, or say clearly why not.

`load_file` checks, in order: the extension is supported, the size is under `max_bytes`
(before reading), the file is not empty, the bytes are what the extension claims
(sniffing), zip-based formats do not expand past the archive limits (before any member
is decompressed), then parses it with the format's loader (one module per format).
Parts located inside a file (slide, sheet, chapter, attachment...) carry a `location`
label such as "slide 3" that citations show; PDF pages keep `page`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from langchain_core.documents import Document

from ingest.errors import EmptyFile, NoExtractableText, UnsupportedFile
from ingest.loaders.archive_guard import ZIP_FORMATS, check_archive
from ingest.loaders.csv_records import load_csv
from ingest.loaders.ebook import load_epub
from ingest.loaders.html_page import load_html
from ingest.loaders.image import load_image
from ingest.loaders.json_records import load_json
from ingest.loaders.mail import load_eml, load_mbox
from ingest.loaders.markdown import load_markdown
from ingest.loaders.options import LoadContext, LoadOptions, Progress
from ingest.loaders.pdf import load_pdf
from ingest.loaders.plain_text import load_text
from ingest.loaders.presentation import load_pptx
from ingest.loaders.sniff import check_content
from ingest.loaders.source import Extracted, SourceFile, extension_of, read_source
from ingest.loaders.word import load_docx
from ingest.loaders.workbook import load_xlsx

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "FileFormat",
    "LoadOptions",
    "format_for",
    "load_file",
]

# Attached files inside attached messages inside an e-mail: deeper than this is skipped.
MAX_NESTING = 2

Loader = Callable[[SourceFile, LoadContext], Extracted]


def _plain(load: Callable[[SourceFile], Extracted]) -> Loader:
    """A loader that needs nothing but the file."""

    def with_context(source: SourceFile, _context: LoadContext) -> Extracted:
        return load(source)

    return with_context


@dataclass(frozen=True)
class FileFormat:
    """A supported format: its `format` metadata value, MIME type and loader."""

    name: str
    mime: str
    load: Loader


_OOXML = "application/vnd.openxmlformats-officedocument"
_PDF = FileFormat("pdf", "application/pdf", load_pdf)
_DOCX = FileFormat("docx", f"{_OOXML}.wordprocessingml.document", _plain(load_docx))
_PPTX = FileFormat("pptx", f"{_OOXML}.presentationml.presentation", load_pptx)
_XLSX = FileFormat("xlsx", f"{_OOXML}.spreadsheetml.sheet", load_xlsx)
_XLSM = FileFormat("xlsx", "application/vnd.ms-excel.sheet.macroEnabled.12", load_xlsx)
_EPUB = FileFormat("epub", "application/epub+zip", load_epub)
_EML = FileFormat("eml", "message/rfc822", load_eml)
_MBOX = FileFormat("mbox", "application/mbox", load_mbox)
_PNG = FileFormat("image", "image/png", load_image)
_JPEG = FileFormat("image", "image/jpeg", load_image)
_TIFF = FileFormat("image", "image/tiff", load_image)
_HTML = FileFormat("html", "text/html", _plain(load_html))
_MARKDOWN = FileFormat("markdown", "text/markdown", _plain(load_markdown))
_TEXT = FileFormat("text", "text/plain", _plain(load_text))
_CSV = FileFormat("csv", "text/csv", _plain(load_csv))
_TSV = FileFormat("csv", "text/tab-separated-values", _plain(load_csv))
_JSON = FileFormat("json", "application/json", _plain(load_json))
_JSONL = FileFormat("json", "application/x-ndjson", _plain(load_json))

_FORMATS: dict[str, FileFormat] = {
    ".pdf": _PDF,
    ".docx": _DOCX,
    ".pptx": _PPTX,
    ".xlsx": _XLSX,
    ".xlsm": _XLSM,
    ".epub": _EPUB,
    ".eml": _EML,
    ".mbox": _MBOX,
    ".png": _PNG,
    ".jpg": _JPEG,
    ".jpeg": _JPEG,
    ".tif": _TIFF,
    ".tiff": _TIFF,
    ".html": _HTML,
    ".htm": _HTML,
    ".xhtml": _HTML,
    ".md": _MARKDOWN,
    ".markdown": _MARKDOWN,
    ".txt": _TEXT,
    ".text": _TEXT,
    ".csv": _CSV,
    ".tsv": _TSV,
    ".json": _JSON,
    ".jsonl": _JSONL,
    ".ndjson": _JSONL,
}

_TO_DOCX = "Save it as .docx (or export a PDF) and upload that."
_TO_XLSX = "Save it as .xlsx (or export each sheet as .csv) and upload that."
_TO_PPTX = "Save it as .pptx (or export a PDF) and upload that."
_TO_PDF = "Export it as PDF and upload that."
_TO_PNG = "Save it as PNG or JPEG and upload that."
_TO_EML = "Save the message as .eml and upload that."
# Common formats we do not read, with the conversion that gets them in.
_CONVERSIONS = {
    ".doc": _TO_DOCX,
    ".docm": _TO_DOCX,
    ".rtf": _TO_DOCX,
    ".odt": _TO_DOCX,
    ".pages": _TO_DOCX,
    ".wpd": _TO_DOCX,
    ".xls": _TO_XLSX,
    ".ods": _TO_XLSX,
    ".numbers": _TO_XLSX,
    ".ppt": _TO_PPTX,
    ".pptm": _TO_PPTX,
    ".odp": _TO_PPTX,
    ".key": _TO_PDF,
    ".mobi": _TO_PDF,
    ".azw3": _TO_PDF,
    ".xps": _TO_PDF,
    ".heic": _TO_PNG,
    ".webp": _TO_PNG,
    ".gif": _TO_PNG,
    ".bmp": _TO_PNG,
    ".msg": _TO_EML,
}

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(_FORMATS)
"""Lower-case suffixes with their dot, as `Path.suffix` gives them (".pdf")."""


def format_for(name: str) -> FileFormat | None:
    """The format a file name's extension selects, or None when unsupported."""
    return _FORMATS.get(Path(name).suffix.lower())


def load_file(
    path: Path,
    *,
    display_name: str | None = None,
    max_bytes: int | None = None,
    options: LoadOptions | None = None,
    progress: Progress | None = None,
) -> list[Document]:
    """Documents for one file (one per PDF page or slide with text, per CSV/JSON row group,
    per sheet row group, per chapter, per e-mail message and attachment part, else one).

    `display_name` is the name the user knows the file by (uploads are stored under
    generated names); it becomes `source_id` and picks the format when it has an extension.
    `progress` hears about long work inside one file (OCR page by page, sheets, messages).
    Raises an `IngestError` subclass naming the file; never returns an empty list.
    """
    path = Path(path)
    name = display_name or path.name
    extension = extension_of(path, display_name)
    fmt = _format_or_refuse(name, extension)
    source = read_source(path, name=name, extension=extension, max_bytes=max_bytes)
    context = _context(options or LoadOptions(), progress, depth=0)
    extracted = _extract(source, fmt, context)
    base = {
        "title": extracted.title or Path(name).name,
        "source_type": "file",
        "source_id": name,
        "file_name": Path(name).name,
        "mime": fmt.mime,
        "format": fmt.name,
        "file_hash": source.sha256,
        **extracted.metadata,
    }
    return [
        Document(page_content=part.text, metadata={**base, **part.metadata})
        for part in extracted.parts
    ]


def _format_or_refuse(name: str, extension: str) -> FileFormat:
    fmt = _FORMATS.get(extension)
    if fmt is not None:
        return fmt
    supported = f"Supported types: {', '.join(sorted(SUPPORTED_EXTENSIONS))}."
    raise UnsupportedFile(
        f"{name} is not a supported file type"
        + (f" ({extension})." if extension else " (it has no extension)."),
        file_name=name,
        hint=f"{_CONVERSIONS[extension]} {supported}" if extension in _CONVERSIONS else supported,
    )


def _extract(source: SourceFile, fmt: FileFormat, context: LoadContext) -> Extracted:
    check_content(source, fmt.name)
    if fmt.name in ZIP_FORMATS:
        check_archive(source, context.options.archive)
    extracted = fmt.load(source, context)
    if not extracted.parts:
        raise NoExtractableText(f"{source.name} has no text to index.", file_name=source.name)
    return extracted


def _context(options: LoadOptions, progress: Progress | None, *, depth: int) -> LoadContext:
    report = progress or _quiet

    def load_attachment(name: str, data: bytes) -> Extracted:
        """A file found inside another (an e-mail attachment), checked like an upload."""
        extension = extension_of(Path(name), None)
        fmt = _format_or_refuse(name, extension)
        if not data or data.isspace():
            raise EmptyFile(f"{name} is empty.", file_name=name)
        source = SourceFile(
            path=Path(name),
            name=name,
            extension=extension,
            data=data,
            sha256=hashlib.sha256(data).hexdigest(),
        )
        if fmt.name == "mbox":
            raise UnsupportedFile(
                f"{name} is a mailbox inside a message; it is not read there.",
                file_name=name,
                hint="Upload the mailbox on its own.",
            )
        return _extract(source, fmt, _context(options, progress, depth=depth + 1))

    return LoadContext(
        options=options,
        progress=report,
        load_attachment=load_attachment if depth < MAX_NESTING else None,
    )


def _quiet(_message: str) -> None:
    pass
