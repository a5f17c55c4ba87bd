"""XLSX/XLSM (openpyxl): each sheet's rows as records under its header row, like CSV.

Per sheet, the first row holding a value is the header; every later row becomes
`column: value; column: value` and rows are grouped `ROWS_PER_PART` at a time under a
`Sheet: NAME` and a `Columns: ...` line, so every chunk carries its context. A sheet
with a single row is kept as that row. Cells give their cached values (what Excel
showed), not formulas. Parts carry `sheet`, `row_start`/`row_end` (1-based sheet rows)
and a `location` such as "sheet Budget, rows 2-26". Read in openpyxl's streaming
(read-only) mode: memory stays flat on large sheets.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any
from xml.etree.ElementTree import ParseError

from openpyxl import load_workbook
from openpyxl.utils.exceptions import InvalidFileException

from ingest.errors import CorruptFile, EmptyFile
from ingest.loaders.archive_guard import ZIP_PARSE_ERRORS
from ingest.loaders.csv_records import ROWS_PER_PART, header_names, record_line
from ingest.loaders.normalise import normalise_text, one_line
from ingest.loaders.options import LoadContext
from ingest.loaders.source import Extracted, Part, SourceFile

__all__ = ["load_xlsx"]

# openpyxl warns about every stylistic oddity it repairs (no default style, unknown
# extensions, data validation); the text is what matters here.
warnings.filterwarnings("ignore", category=UserWarning, module="openpyxl")

_PARSE_ERRORS: tuple[type[BaseException], ...] = (
    InvalidFileException,
    ParseError,
    *ZIP_PARSE_ERRORS,
)


def load_xlsx(source: SourceFile, context: LoadContext) -> Extracted:
    name = source.name
    parts: list[Part] = []
    try:
        workbook = load_workbook(io.BytesIO(source.data), read_only=True, data_only=True)
        try:
            sheets = workbook.worksheets
            for index, sheet in enumerate(sheets, start=1):
                if len(sheets) > 1:
                    context.progress(f"reading {name}: sheet {sheet.title} ({index}/{len(sheets)})")
                sheet.reset_dimensions()  # some writers store a wrong size; read every row
                parts.extend(_sheet_parts(sheet.title, sheet.iter_rows(values_only=True)))
            title = one_line(workbook.properties.title or "") or None
        finally:
            workbook.close()
    except _PARSE_ERRORS as exc:
        raise CorruptFile(
            f"{name} is not a readable Excel workbook ({type(exc).__name__}: "
            f"{one_line(str(exc))[:120]}).",
            file_name=name,
        ) from None
    if not parts:
        raise EmptyFile(
            f"{name} has no cells with values in its {len(sheets)} sheet(s).", file_name=name
        )
    return Extracted(parts=parts, title=title, metadata={"sheets": len(sheets)})


def _sheet_parts(title: str, rows: Iterator[Sequence[Any]]) -> Iterator[Part]:
    numbered = (
        (number, values)
        for number, row in enumerate(rows, start=1)
        if any(values := [cell_text(value) for value in row])
    )
    first = next(numbered, None)
    if first is None:
        return
    header_row, header_values = first
    second = next(numbered, None)
    if second is None:  # a lone row: no header to speak of, keep it as it is
        text = normalise_text(f"Sheet: {title}\n" + " | ".join(v for v in header_values if v))
        yield Part(text, _where(title, header_row, header_row))
        return
    header = header_names(header_values)
    context_lines = f"Sheet: {title}\nColumns: {', '.join(header)}"
    records: list[str] = []
    start = end = 0
    for number, values in _chain(second, numbered):
        record = record_line(header, values)
        if not record:
            continue
        if not records:
            start = number
        records.append(record)
        end = number
        if len(records) == ROWS_PER_PART:
            yield _records_part(context_lines, records, title, start, end)
            records = []
    if records:
        yield _records_part(context_lines, records, title, start, end)


def _records_part(context_lines: str, records: list[str], sheet: str, start: int, end: int) -> Part:
    return Part(
        normalise_text(context_lines + "\n" + "\n".join(records)), _where(sheet, start, end)
    )


def _chain(
    first: tuple[int, list[str]], rest: Iterator[tuple[int, list[str]]]
) -> Iterator[tuple[int, list[str]]]:
    yield first
    yield from rest


def _where(sheet: str, start: int, end: int) -> dict[str, Any]:
    rows = f"row {start}" if start == end else f"rows {start}-{end}"
    return {
        "sheet": sheet,
        "row_start": start,
        "row_end": end,
        "location": f"sheet {sheet}, {rows}",
    }


def cell_text(value: Any) -> str:
    """A cell's value as people read it: 3 not 3.0, dates without a midnight time."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.15g}"
    if isinstance(value, datetime):
        if value.time() == time(0, 0):
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    return one_line(str(value))
