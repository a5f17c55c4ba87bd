"""DOCX: body text in reading order, headings as Markdown headings, tables as rows.

Rows are written `cell | cell | cell`, one per line; a table nested in a cell is written
inline in brackets (`[x, y; z, w]`) so it stays attached to the row it belongs to. Cells
merged across columns appear once; cells merged down rows repeat their value on each row,
which keeps every row readable on its own. Headers and footers are left out (boilerplate).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import docx
from docx.document import Document as DocxDocument
from docx.enum.style import WD_STYLE_TYPE
from docx.opc.exceptions import PackageNotFoundError
from docx.oxml.ns import qn
from docx.table import Table, _Cell
from docx.text.paragraph import Paragraph

from ingest.errors import CorruptFile, NoExtractableText
from ingest.loaders.archive_guard import ZIP_PARSE_ERRORS
from ingest.loaders.normalise import normalise_text, one_line
from ingest.loaders.source import Extracted, Part, SourceFile

_HEADING_STYLE = re.compile(r"(?i)^heading\s*([1-9])$")
_PARSE_ERRORS: tuple[type[BaseException], ...] = (PackageNotFoundError, *ZIP_PARSE_ERRORS)


def load_docx(source: SourceFile) -> Extracted:
    name = source.name
    try:
        document = docx.Document(io.BytesIO(source.data))
        styles = _Styles(document)
        lines = list(_render_body(document, styles))
        title = _title(document, styles)
    except _PARSE_ERRORS as exc:
        raise CorruptFile(
            f"{name} is not a readable Word document ({type(exc).__name__}: "
            f"{one_line(str(exc))[:120]}).",
            file_name=name,
        ) from None
    text = normalise_text("\n\n".join(line for line in lines if line.strip()))
    if not text:
        images = len(document.element.body.findall(".//" + qn("w:drawing")))
        what = f"only {images} image(s) and no text" if images else "no text"
        raise NoExtractableText(
            f"{name} contains {what}.",
            file_name=name,
            hint="If the images are scans, OCR them first; otherwise type or paste the text "
            "into the document and upload it again.",
        )
    metadata: dict[str, Any] = {}
    return Extracted(parts=[Part(text)], title=title, metadata=metadata)


def _render_body(document: DocxDocument, styles: _Styles) -> Iterator[str]:
    for block in _blocks(document.element.body, document):
        if isinstance(block, Paragraph):
            yield _render_paragraph(block, styles)
        else:
            yield "\n".join(_render_rows(block))


def _blocks(container: Any, parent: Any) -> Iterator[Paragraph | Table]:
    """Paragraphs and tables in order, including those inside content controls (w:sdt).

    python-docx's `iter_inner_content` skips content controls, where Word keeps tables
    of contents and form fields.
    """
    for child in container.iterchildren():
        if child.tag == qn("w:p"):
            yield Paragraph(child, parent)
        elif child.tag == qn("w:tbl"):
            yield Table(child, parent)
        elif child.tag == qn("w:sdt"):
            content = child.find(qn("w:sdtContent"))
            if content is not None:
                yield from _blocks(content, parent)


def _render_paragraph(paragraph: Paragraph, styles: _Styles) -> str:
    text = one_line(_paragraph_text(paragraph._p))
    boxes = [one_line(_paragraph_text(p)) for p in _text_box_paragraphs(paragraph._p)]
    boxed = "\n".join(box for box in boxes if box)
    if not text:
        return boxed
    kind = styles.of(paragraph)
    if kind.heading:
        text = f"{'#' * kind.heading} {text}"
    else:
        p_pr = paragraph._p.pPr
        if kind.listed or (p_pr is not None and p_pr.numPr is not None):
            text = f"- {text}"
    return f"{text}\n{boxed}" if boxed else text


# python-docx's `Paragraph.text` reads only runs and hyperlinks directly under the
# paragraph: it misses tracked insertions, field results (tables of contents, cross-
# references), smart tags and inline content controls. Walk the paragraph's XML instead.
_TEXT = qn("w:t")
_TABS = {qn("w:tab"), qn("w:ptab")}
_BREAKS = {qn("w:br"), qn("w:cr")}
_HYPHEN = qn("w:noBreakHyphen")
# Deleted text, field codes, formatting, and text boxes (rendered on their own lines);
# mc:Fallback repeats the mc:Choice content for old readers.
_SKIP = {
    qn("w:del"),
    qn("w:instrText"),
    qn("w:rPr"),
    qn("w:pPr"),
    qn("w:txbxContent"),
    "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback",
}
_TEXT_BOX = qn("w:txbxContent")


def _paragraph_text(element: Any) -> str:
    return "".join(_text_pieces(element))


def _text_pieces(element: Any) -> Iterator[str]:
    for child in element.iterchildren():
        tag = child.tag
        if tag == _TEXT:
            yield child.text or ""
        elif tag in _TABS:
            yield "\t"
        elif tag in _BREAKS:
            yield "\n"
        elif tag == _HYPHEN:
            yield "-"
        elif tag not in _SKIP and isinstance(tag, str):
            yield from _text_pieces(child)


def _text_box_paragraphs(element: Any) -> Iterator[Any]:
    """Paragraphs of text boxes anchored in this paragraph (each box once)."""
    for child in element.iterchildren():
        tag = child.tag
        if tag == _TEXT_BOX:
            yield from child.iter(qn("w:p"))
        elif tag not in _SKIP - {_TEXT_BOX} and isinstance(tag, str):
            yield from _text_box_paragraphs(child)


def _render_rows(table: Table) -> Iterator[str]:
    for row in table.rows:
        cells = _unique_cells(row.cells)
        values = [_render_cell(cell) for cell in cells]
        if any(values):
            yield " | ".join(values)


def _render_cell(cell: _Cell) -> str:
    pieces: list[str] = []
    for block in _blocks(cell._tc, cell):
        if isinstance(block, Paragraph):
            pieces.append(one_line(_paragraph_text(block._p)))
        else:
            rows = [
                "; ".join(
                    ", ".join(_render_cell(c) for c in _unique_cells(r.cells)) for r in block.rows
                )
            ]
            pieces.append(f"[{rows[0]}]")
    return " ".join(piece for piece in pieces if piece)


def _unique_cells(cells: Any) -> list[_Cell]:
    """Horizontally merged cells come back once per grid column; keep one of each."""
    seen: set[int] = set()
    unique = []
    for cell in cells:
        if id(cell._tc) not in seen:
            seen.add(id(cell._tc))
            unique.append(cell)
    return unique


@dataclass(frozen=True)
class _StyleKind:
    heading: int = 0  # Markdown heading level; 0 for body text
    listed: bool = False
    title: bool = False


class _Styles:
    """Paragraph style id -> what it means for us, worked out once per document.

    Resolving `paragraph.style` through python-docx costs a scan of all styles per
    paragraph (minutes on a long handbook); the style table is small.
    """

    def __init__(self, document: DocxDocument) -> None:
        self._kinds = {
            style.style_id: _kind_of(style)
            for style in document.styles
            if style.type == WD_STYLE_TYPE.PARAGRAPH
        }
        default = document.styles.default(WD_STYLE_TYPE.PARAGRAPH)
        self._default = _kind_of(default) if default is not None else _StyleKind()

    def of(self, paragraph: Paragraph) -> _StyleKind:
        style_id = paragraph._p.style
        return self._kinds.get(style_id, self._default) if style_id else self._default


def _kind_of(style: Any) -> _StyleKind:
    """Judged by the style's name and the styles it is based on (custom heading styles
    are usually based on a built-in "Heading N")."""
    names: list[str] = []
    while style is not None and len(names) < 6:
        names.append((style.name or "").strip().lower())
        style = style.base_style
    for name in names:
        if name == "title":
            return _StyleKind(heading=1, title=names[0] == "title")
        if match := _HEADING_STYLE.match(name):
            return _StyleKind(heading=int(match.group(1)))
    return _StyleKind(listed=bool(names) and names[0].startswith("list"))


def _title(document: DocxDocument, styles: _Styles) -> str | None:
    title = one_line(document.core_properties.title or "")
    if title:
        return title
    for paragraph in document.paragraphs[:50]:
        if styles.of(paragraph).title and (text := one_line(paragraph.text)):
            return text
    return None
