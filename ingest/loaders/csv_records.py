"""CSV/TSV: each row as a readable record `col: value; col: value`, grouped into parts.

The first row is always the header (CSV exports almost always have one, and a guessed
"no header" misnames every column). The delimiter and quoting are sniffed (`.tsv` is
tab-separated); empty values are left out of a record. Each part holds `ROWS_PER_PART`
rows under a `Columns: ...` line and records the file lines it covers (1-based, the
header is line 1) as `line_start`/`line_end`.
"""

from __future__ import annotations

import csv
import io

from ingest.errors import CorruptFile, EmptyFile
from ingest.loaders.encoding import decode_text
from ingest.loaders.normalise import normalise_text, one_line
from ingest.loaders.source import Extracted, Part, SourceFile

ROWS_PER_PART = 25
_SNIFF_SAMPLE = 64 * 1024
_DELIMITERS = ",;\t|"


def load_csv(source: SourceFile) -> Extracted:
    decoded = decode_text(source)
    text = decoded.text.lstrip("\ufeff").replace("\x00", "")
    dialect = _dialect(text, tab_separated=source.extension == ".tsv")
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    name = source.name
    try:
        header = header_names(next((row for row in reader if any(c.strip() for c in row)), []))
        columns_line = "Columns: " + ", ".join(header)
        parts: list[Part] = []
        records: list[str] = []
        first_line = last_line = rows = 0
        previous_end = reader.line_num
        for row in reader:
            start, end = previous_end + 1, reader.line_num
            previous_end = end
            record = record_line(header, row)
            if not record:
                continue
            if not records:
                first_line = start
            records.append(record)
            rows += 1
            last_line = end
            if len(records) == ROWS_PER_PART:
                parts.append(_part(columns_line, records, first_line, last_line))
                records = []
        if records:
            parts.append(_part(columns_line, records, first_line, last_line))
    except csv.Error as exc:
        raise CorruptFile(
            f"{name} is not valid CSV (line {reader.line_num}: {exc}).", file_name=name
        ) from None
    if not header:
        raise EmptyFile(f"{name} holds no rows.", file_name=name)
    if not parts:
        raise EmptyFile(f"{name} has a header row but no data rows.", file_name=name)
    metadata = {"encoding": decoded.encoding, "rows": rows}
    return Extracted(parts=parts, metadata=metadata)


def _dialect(text: str, *, tab_separated: bool) -> type[csv.Dialect] | csv.Dialect:
    if tab_separated:
        return csv.excel_tab
    sample = text[:_SNIFF_SAMPLE]
    if len(text) > _SNIFF_SAMPLE and "\n" in sample:
        sample = sample[: sample.rindex("\n")]
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS)
    except csv.Error:
        # Sniffing fails on one-column files and very regular data: fall back to the
        # delimiter the header line uses most, else plain comma-separated.
        first = sample.split("\n", 1)[0]
        counts = {d: first.count(d) for d in _DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        if counts[best] == 0 or best == ",":
            return csv.excel

        class Guessed(csv.excel):
            delimiter = best

        return Guessed


def header_names(row: list[str]) -> list[str]:
    """Column names from a header row: blanks become "column N", repeats get "(N)"."""
    names: list[str] = []
    for index, raw in enumerate(row, start=1):
        name = one_line(raw) or f"column {index}"
        if name in names:
            name = f"{name} ({index})"
        names.append(name)
    while names and names[-1].startswith("column ") and not one_line(row[len(names) - 1]):
        names.pop()  # trailing delimiters on the header line
    return names


def record_line(header: list[str], row: list[str]) -> str:
    """One row as `column: value; column: value`, empty values left out."""
    fields = []
    for index, raw in enumerate(row):
        value = one_line(raw)
        if value:
            column = header[index] if index < len(header) else f"column {index + 1}"
            fields.append(f"{column}: {value}")
    return "; ".join(fields)


def _part(columns_line: str, records: list[str], first: int, last: int) -> Part:
    text = normalise_text(columns_line + "\n" + "\n".join(records))
    return Part(text, {"line_start": first, "line_end": last})
