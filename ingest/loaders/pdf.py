"""PDF: one part per page with text, 1-based page numbers kept (pypdf).

Pages without a text layer (scans) are rendered (pypdfium2) and OCR'd with tesseract
when OCR is on; only those pages, so a mixed PDF keeps its real text where it has one.
OCR'd pages carry `ocr: True`. Pages that draw nothing at all are not OCR'd. Without
tesseract, a scan is refused saying what to install, while a mixed PDF is indexed from
its text pages (and the log says what is missing).

Encryption rule: a PDF that opens with the empty user password (an "owner password" that
only restricts printing/copying/editing) is ingested like any other. Every viewer shows
its text without asking, so those permission flags protect nothing from the person who
uploads it into their own private knowledge base. A PDF that needs a password to open
is refused with EncryptedFile; nothing of it is ingested.
"""

from __future__ import annotations

import io
import logging
import re
from typing import Any

from pypdf import PasswordType, PdfReader
from pypdf.errors import FileNotDecryptedError, PyPdfError

from ingest.errors import CorruptFile, EncryptedFile, NoExtractableText, OcrUnavailable
from ingest.loaders.normalise import normalise_text, one_line
from ingest.loaders.ocr import ocr_pages
from ingest.loaders.options import LoadContext
from ingest.loaders.pdf_render import PdfPages, RenderError
from ingest.loaders.source import Extracted, Part, SourceFile

log = logging.getLogger(__name__)

# pypdf logs every recoverable oddity of real-world files as a warning; the outcome
# (text, or one of our errors) is what matters to the user.
logging.getLogger("pypdf").setLevel(logging.ERROR)

# Metadata titles that are really file names or placeholders ("10811.exe", "untitled").
_JUNK_TITLE = re.compile(
    r"(?i)^(untitled.*|.*\.(?=[a-z0-9]*[a-z])[a-z0-9]{2,4}|microsoft word - .*|document\d*)$"
)
# pypdf raises many plain Python errors on damaged files, not only its own.
_PARSE_ERRORS = (
    PyPdfError,
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    AttributeError,
    AssertionError,
    RecursionError,
    OSError,
    ZeroDivisionError,
)


def load_pdf(source: SourceFile, context: LoadContext) -> Extracted:
    name = source.name
    reader: PdfReader | None = None
    try:
        reader = PdfReader(io.BytesIO(source.data))
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise _encrypted(name)
        pages = [page.extract_text() or "" for page in reader.pages]
        labels = _page_labels(reader, len(pages))
        title = _title(reader)
    except FileNotDecryptedError:
        raise _encrypted(name) from None
    except NotImplementedError as exc:
        if reader is not None and _is_encrypted(reader):
            raise EncryptedFile(
                f"{name} uses an encryption pypdf cannot open ({_reason(exc)}).", file_name=name
            ) from None
        raise CorruptFile(
            f"{name} uses a PDF feature that cannot be read ({_reason(exc)}).", file_name=name
        ) from None
    except _PARSE_ERRORS as exc:
        raise CorruptFile(
            f"{name} is not a readable PDF (truncated or damaged: {_reason(exc)}).",
            file_name=name,
        ) from None

    texts = {number: normalise_text(raw) for number, raw in enumerate(pages, start=1)}
    scanned = [number for number, text in texts.items() if not text]
    try:
        ocr_done = _ocr(source, scanned, context) if scanned else {}
    except OcrUnavailable as error:
        if len(scanned) == len(pages):
            raise
        # Most of it has a text layer: index that rather than nothing, and tell the
        # operator what is missing for the rest.
        log.warning("%s: indexing its text pages only. %s", name, error)
        ocr_done = {}
    texts.update(ocr_done)
    parts = [
        Part(
            text,
            {
                "page": number,
                **({"page_label": label} if label else {}),
                **({"ocr": True} if number in ocr_done else {}),
            },
        )
        for number, label in enumerate(labels, start=1)
        if (text := texts[number])
    ]
    if not parts:
        if context.options.ocr.enabled:
            raise NoExtractableText(
                f"{name} has no text layer, and OCR found no recognisable text on its "
                f"{_pages(len(pages))}.",
                file_name=name,
                hint="If it does show text, scan it again at a higher resolution (300 dpi) "
                "or check that KB_OCR_LANGUAGES names its language.",
            )
        raise NoExtractableText(
            f"{name} has no text layer: this looks like a scan; OCR it first.",
            file_name=name,
            hint="Run OCR on it (e.g. ocrmypdf, or your scanner's 'searchable PDF' option) "
            "and upload the result, or ask an administrator to turn OCR on (KB_OCR_ENABLED).",
        )
    metadata: dict[str, Any] = {"pages": len(pages)}
    if len(parts) < len(pages):
        metadata["pages_without_text"] = len(pages) - len(parts)
    if ocr_done:
        metadata["ocr_pages"] = len(ocr_done)
    return Extracted(parts=parts, title=title, metadata=metadata)


def _ocr(source: SourceFile, numbers: list[int], context: LoadContext) -> dict[int, str]:
    """Page number -> OCR text for the pages in `numbers` that hold recognisable text."""
    options = context.options.ocr
    if not options.enabled:
        return {}
    name = source.name
    try:
        with PdfPages(source.data) as document:
            todo = [n for n in numbers if n <= len(document) and not document.is_blank(n)]
            if not todo:
                return {}
            read = ocr_pages(
                todo,
                lambda number: document.render(number, dpi=options.dpi),
                name=name,
                options=options,
                progress=context.progress,
                why=f"{_pages(len(numbers))} without a text layer",
            )
    except RenderError as exc:
        # pypdf read it but PDFium cannot: keep the pages that have text, if any.
        log.warning("cannot render %s for OCR: %s", name, exc)
        return {}
    return {
        number: text
        for number, result in read.items()
        if result.has_text and (text := normalise_text(result.text))
    }


def _pages(count: int) -> str:
    return f"{count} page" if count == 1 else f"{count} pages"


def _page_labels(reader: PdfReader, count: int) -> list[str | None]:
    """The printed page labels ("iii", "47699") where the PDF defines them and they differ
    from the 1-based page number; citations can show them next to `page`."""
    try:
        if "/PageLabels" not in reader.root_object:
            return [None] * count
        labels = list(reader.page_labels)
    except _PARSE_ERRORS:
        return [None] * count
    if len(labels) != count:
        return [None] * count
    return [None if label == str(number) else label for number, label in enumerate(labels, start=1)]


def _title(reader: PdfReader) -> str | None:
    info = reader.metadata
    raw = info.title if info is not None else None
    title = one_line(str(raw)) if raw else ""
    if not title or _JUNK_TITLE.match(title):
        return None
    return title


def _is_encrypted(reader: PdfReader) -> bool:
    try:
        return bool(reader.is_encrypted)
    except _PARSE_ERRORS:
        return False


def _encrypted(name: str) -> EncryptedFile:
    return EncryptedFile(f"{name} is password-protected.", file_name=name)


def _reason(exc: BaseException) -> str:
    text = one_line(str(exc)) or type(exc).__name__
    return text[:120]
