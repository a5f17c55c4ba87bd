"""Plain text in any common encoding (BOMs, UTF-16, Windows-1252, Latin-1...).

Text laid out in columns (pdftotext -layout output, fixed-width reports) is read column
by column before whitespace is collapsed, which would lose where the columns are.
"""

from __future__ import annotations

from ingest.errors import EmptyFile
from ingest.loaders.encoding import decode_text
from ingest.loaders.normalise import normalise_text
from ingest.loaders.source import Extracted, Part, SourceFile
from ingest.loaders.text_columns import in_column_order


def load_text(source: SourceFile) -> Extracted:
    decoded = decode_text(source)
    text = normalise_text(in_column_order(decoded.text))
    if not text:
        raise EmptyFile(f"{source.name} holds only whitespace.", file_name=source.name)
    return Extracted(parts=[Part(text)], metadata={"encoding": decoded.encoding})
