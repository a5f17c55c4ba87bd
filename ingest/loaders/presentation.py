"""PPTX (python-pptx): one part per slide with text: title, text boxes, tables, notes.

Shapes are read top to bottom, then left to right (the order people read a slide in,
not the order they were drawn in), groups included; tables are written one row per
line (`cell | cell`), chart titles kept, pictures skipped. Speaker notes follow the
slide's text after "Speaker notes:". Parts carry `slide` (1-based), `slide_title` and a
`location` such as "slide 3"; slides with no text at all are left out.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import Any

from pptx import Presentation
from pptx.exc import PythonPptxError
from pptx.shapes.group import GroupShape
from pptx.slide import Slide

from ingest.errors import CorruptFile, EmptyFile, NoExtractableText
from ingest.loaders.archive_guard import ZIP_PARSE_ERRORS
from ingest.loaders.normalise import normalise_text, one_line
from ingest.loaders.options import LoadContext
from ingest.loaders.source import Extracted, Part, SourceFile

__all__ = ["load_pptx"]

_PARSE_ERRORS: tuple[type[BaseException], ...] = (PythonPptxError, *ZIP_PARSE_ERRORS)


def load_pptx(source: SourceFile, context: LoadContext) -> Extracted:
    name = source.name
    try:
        deck = Presentation(io.BytesIO(source.data))
        slides = list(deck.slides)
        parts = []
        for number, slide in enumerate(slides, start=1):
            title, text = _slide_text(slide)
            if text:
                metadata: dict[str, Any] = {"slide": number, "location": f"slide {number}"}
                if title:
                    metadata["slide_title"] = title
                parts.append(Part(text, metadata))
        title = one_line(deck.core_properties.title or "") or _first_title(parts)
    except _PARSE_ERRORS as exc:
        raise CorruptFile(
            f"{name} is not a readable PowerPoint deck ({type(exc).__name__}: "
            f"{one_line(str(exc))[:120]}).",
            file_name=name,
        ) from None
    if not slides:
        raise EmptyFile(f"{name} has no slides.", file_name=name)
    if not parts:
        raise NoExtractableText(
            f"{name} has no text on its {len(slides)} slide(s) (only pictures or shapes).",
            file_name=name,
            hint="If the slides are pictures of text, export the deck as images or PDF and "
            "upload those to have them OCR'd.",
        )
    return Extracted(parts=parts, title=title, metadata={"slides": len(slides)})


def _slide_text(slide: Slide) -> tuple[str | None, str]:
    """(the slide's title, all its text including the title and the speaker notes)."""
    title_shape = slide.shapes.title
    title = one_line(title_shape.text_frame.text) if title_shape is not None else ""
    lines = [title] if title else []
    for shape in _reading_order(slide.shapes):
        if title_shape is not None and shape.shape_id == title_shape.shape_id:
            continue
        lines.extend(_shape_lines(shape))
    notes = _notes(slide)
    if notes:
        lines += ["", f"Speaker notes: {notes}"]
    return title or None, normalise_text("\n".join(lines))


def _reading_order(shapes: Iterable[Any]) -> list[Any]:
    return sorted(shapes, key=lambda shape: (shape.top or 0, shape.left or 0))


def _shape_lines(shape: Any) -> Iterator[str]:
    if isinstance(shape, GroupShape):
        for member in _reading_order(shape.shapes):
            yield from _shape_lines(member)
    elif shape.has_text_frame:
        for paragraph in shape.text_frame.paragraphs:
            if text := one_line(paragraph.text):
                yield text
    elif shape.has_table:
        for row in shape.table.rows:
            cells = [one_line(cell.text) for cell in row.cells if not cell.is_spanned]
            if any(cells):
                yield " | ".join(cells)
    elif shape.has_chart:
        chart = shape.chart
        if chart.has_title and (text := one_line(chart.chart_title.text_frame.text)):
            yield f"Chart: {text}"


def _notes(slide: Slide) -> str:
    if not slide.has_notes_slide:
        return ""
    frame = slide.notes_slide.notes_text_frame
    return normalise_text(frame.text) if frame is not None else ""


def _first_title(parts: list[Part]) -> str | None:
    for part in parts:
        if title := part.metadata.get("slide_title"):
            return str(title)
    return None
