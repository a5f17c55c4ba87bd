"""EPUB (ebooklib): one part per chapter (spine document with text), in reading order.

A chapter's title comes from the book's table of contents (EPUB 3 nav or EPUB 2 NCX),
else its first heading. Parts carry `chapter` (1-based, counting documents with text),
`chapter_title` and a `location` such as "chapter 2: Down the Rabbit-Hole". Books whose
chapters are encrypted (DRM) are refused; obfuscated fonts alone are fine.
"""

from __future__ import annotations

import io
import posixpath
import warnings
import zipfile
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

import ebooklib
from ebooklib import epub
from lxml import etree

from ingest.errors import CorruptFile, EncryptedFile, NoExtractableText
from ingest.loaders.archive_guard import ZIP_PARSE_ERRORS
from ingest.loaders.html_page import html_text
from ingest.loaders.normalise import one_line
from ingest.loaders.options import LoadContext
from ingest.loaders.source import Extracted, Part, SourceFile

__all__ = ["load_epub"]

# ebooklib warns about its own future defaults on every read.
warnings.filterwarnings("ignore", category=UserWarning, module="ebooklib")
warnings.filterwarnings("ignore", category=FutureWarning, module="ebooklib")

_PARSE_ERRORS: tuple[type[BaseException], ...] = (epub.EpubException, *ZIP_PARSE_ERRORS)
# Font obfuscation (IDPF, Adobe) "encrypts" fonts only, to stop their reuse; the text
# is readable. Any other algorithm in META-INF/encryption.xml is DRM.
_FONT_OBFUSCATION = {"http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC"}
_ENC = "{http://www.w3.org/2001/04/xmlenc#}"


def load_epub(source: SourceFile, context: LoadContext) -> Extracted:
    name = source.name
    try:
        _refuse_drm(source)
        book = epub.read_epub(io.BytesIO(source.data), options={"ignore_ncx": False})
        titles = _toc_titles(book.toc)
        parts: list[Part] = []
        documents = 0
        for idref, *_ in book.spine:
            item = book.get_item_with_id(idref)
            if (
                item is None
                or item.get_type() != ebooklib.ITEM_DOCUMENT
                or isinstance(item, epub.EpubNav)  # its table of contents is not a chapter
            ):
                continue
            documents += 1
            html = html_text(item.get_content())
            if not html.text:
                continue
            number = len(parts) + 1
            path = _normal(item.get_name())
            title = titles.get(path) or titles.get(posixpath.basename(path)) or html.heading
            metadata: dict[str, Any] = {"chapter": number}
            metadata["location"] = f"chapter {number}: {title}" if title else f"chapter {number}"
            if title:
                metadata["chapter_title"] = title
            parts.append(Part(html.text, metadata))
        book_title = _book_title(book)
    except EncryptedFile:
        raise
    except _PARSE_ERRORS as exc:
        raise CorruptFile(
            f"{name} is not a readable EPUB ({type(exc).__name__}: {one_line(str(exc))[:120]}).",
            file_name=name,
        ) from None
    if not parts:
        what = (
            f"its {documents} chapter(s) hold" if documents else "it has no chapters, so it holds"
        )
        raise NoExtractableText(
            f"{name} has no text: {what} no readable text.",
            file_name=name,
            hint="If its pages are pictures, export them as images or PDF and upload those "
            "to have them OCR'd.",
        )
    return Extracted(parts=parts, title=book_title, metadata={"chapters": len(parts)})


def _refuse_drm(source: SourceFile) -> None:
    with zipfile.ZipFile(io.BytesIO(source.data)) as archive:
        try:
            xml = archive.read("META-INF/encryption.xml")
        except KeyError:
            return
    root = etree.fromstring(xml, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    for method in root.iter(f"{_ENC}EncryptionMethod"):
        if method.get("Algorithm") not in _FONT_OBFUSCATION:
            raise EncryptedFile(
                f"{source.name} is DRM-protected: its chapters are encrypted.",
                file_name=source.name,
                hint="Upload a DRM-free copy of the book (many publishers sell them).",
            )


def _toc_titles(toc: Iterable[Any]) -> dict[str, str]:
    """Document path (no fragment) -> the first table-of-contents title pointing into it.

    Also by bare file name: nav documents in a subfolder link relative to themselves,
    while items are named relative to the package file.
    """
    titles: dict[str, str] = {}
    stack = list(toc)[::-1]
    while stack:
        entry = stack.pop()
        if isinstance(entry, tuple | list):
            stack.extend(list(entry)[::-1])
            continue
        href = getattr(entry, "href", "") or ""
        title = one_line(str(getattr(entry, "title", "") or ""))
        if href and title:
            path = _normal(href.split("#", 1)[0])
            titles.setdefault(path, title)
            titles.setdefault(posixpath.basename(path), title)
    return titles


def _normal(href: str) -> str:
    return posixpath.normpath(unquote(href)).lstrip("/")


def _book_title(book: epub.EpubBook) -> str | None:
    for value, _attributes in book.get_metadata("DC", "title"):
        if title := one_line(str(value or "")):
            return title
    return None
