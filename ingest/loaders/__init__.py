"""Turn one uploaded file into LangChain Documents, or say clearly why not.

`load_file` checks, in order: the extension is supported, the size is under `max_bytes`
(before reading), the file is not empty, the bytes are what the extension claims
(sniffing), then parses it with the format's loader (one module per format).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from langchain_core.documents import Document

from ingest.errors import NoExtractableText, UnsupportedFile
from ingest.loaders.csv_records import load_csv
from ingest.loaders.html_page import load_html
from ingest.loaders.json_records import load_json
from ingest.loaders.markdown import load_markdown
from ingest.loaders.pdf import load_pdf
from ingest.loaders.plain_text import load_text
from ingest.loaders.sniff import check_content
from ingest.loaders.source import Extracted, SourceFile, extension_of, read_source
from ingest.loaders.word import load_docx

__all__ = ["SUPPORTED_EXTENSIONS", "FileFormat", "format_for", "load_file"]


@dataclass(frozen=True)
class FileFormat:
    """A supported format: its `format` metadata value, MIME type and loader."""

    name: str
    mime: str
    load: Callable[[SourceFile], Extracted]


_PDF = FileFormat("pdf", "application/pdf", load_pdf)
_DOCX = FileFormat(
    "docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", load_docx
)
_HTML = FileFormat("html", "text/html", load_html)
_MARKDOWN = FileFormat("markdown", "text/markdown", load_markdown)
_TEXT = FileFormat("text", "text/plain", load_text)
_CSV = FileFormat("csv", "text/csv", load_csv)
_TSV = FileFormat("csv", "text/tab-separated-values", load_csv)
_JSON = FileFormat("json", "application/json", load_json)
_JSONL = FileFormat("json", "application/x-ndjson", load_json)

_FORMATS: dict[str, FileFormat] = {
    ".pdf": _PDF,
    ".docx": _DOCX,
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
_TO_CSV = "Export each sheet as .csv and upload those."
_TO_PDF = "Export it as PDF and upload that."
# Common formats we do not read, with the conversion that gets them in.
_CONVERSIONS = {
    ".doc": _TO_DOCX,
    ".rtf": _TO_DOCX,
    ".odt": _TO_DOCX,
    ".pages": _TO_DOCX,
    ".wpd": _TO_DOCX,
    ".xls": _TO_CSV,
    ".xlsx": _TO_CSV,
    ".xlsm": _TO_CSV,
    ".ods": _TO_CSV,
    ".numbers": _TO_CSV,
    ".ppt": _TO_PDF,
    ".pptx": _TO_PDF,
    ".odp": _TO_PDF,
    ".key": _TO_PDF,
    ".epub": _TO_PDF,
    ".xps": _TO_PDF,
}

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(_FORMATS)
"""Lower-case suffixes with their dot, as `Path.suffix` gives them (".pdf")."""


def format_for(name: str) -> FileFormat | None:
    """The format a file name's extension selects, or None when unsupported."""
    return _FORMATS.get(Path(name).suffix.lower())


def load_file(
    path: Path, *, display_name: str | None = None, max_bytes: int | None = None
) -> list[Document]:
    """Documents for one file (one per PDF page with text, per CSV/JSON row group, else one).

    `display_name` is the name the user knows the file by (uploads are stored under
    generated names); it becomes `source_id` and picks the format when it has an extension.
    Raises an `IngestError` subclass naming the file; never returns an empty list.
    """
    path = Path(path)
    name = display_name or path.name
    extension = extension_of(path, display_name)
    fmt = _FORMATS.get(extension)
    if fmt is None:
        supported = f"Supported types: {', '.join(sorted(SUPPORTED_EXTENSIONS))}."
        raise UnsupportedFile(
            f"{name} is not a supported file type"
            + (f" ({extension})." if extension else " (it has no extension)."),
            file_name=name,
            hint=f"{_CONVERSIONS[extension]} {supported}"
            if extension in _CONVERSIONS
            else supported,
        )
    source = read_source(path, name=name, extension=extension, max_bytes=max_bytes)
    check_content(source, fmt.name)
    extracted = fmt.load(source)
    if not extracted.parts:
        raise NoExtractableText(f"{name} has no text to index.", file_name=name)
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
