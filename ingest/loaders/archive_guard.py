"""Refuse zip bombs before parsing: DOCX, XLSX, PPTX and EPUB are zip archives.

Only the central directory is read (a few KB), never a member. The declared sizes are
a real bound here, not just a claim: every parser we hand these files to (python-docx,
openpyxl, python-pptx, ebooklib) reads members through Python's `zipfile`, which stops
decompressing a member at its declared size and then fails its CRC check. So an archive
that passes this check cannot make a parser hold more than `max_expanded_bytes`.
"""

from __future__ import annotations

import io
import zipfile
import zlib

from lxml.etree import XMLSyntaxError

from ingest.errors import CorruptFile, PossibleZipBomb
from ingest.loaders.options import ArchiveLimits
from ingest.loaders.source import SourceFile

__all__ = ["ZIP_FORMATS", "ZIP_PARSE_ERRORS", "check_archive", "human_bytes"]

ZIP_FORMATS = frozenset({"docx", "xlsx", "pptx", "epub"})

# What parsing a damaged zip-of-XML document raises, whichever library reads it; each
# loader adds its library's own error. They all mean "this file is damaged".
ZIP_PARSE_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,  # zip features Python lacks (or flag bits damaged into them)
    RuntimeError,  # zip-level encrypted members
    KeyError,
    ValueError,
    TypeError,
    IndexError,
    AttributeError,
    XMLSyntaxError,
    OSError,
    EOFError,
)


def check_archive(source: SourceFile, limits: ArchiveLimits) -> None:
    """Raise PossibleZipBomb when the archive's members would expand past the limits."""
    name = source.name
    try:
        with zipfile.ZipFile(io.BytesIO(source.data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise CorruptFile(
            f"{name} is damaged: its zip container cannot be read ({exc}).", file_name=name
        ) from None
    if len(members) > limits.max_members:
        raise PossibleZipBomb(
            f"{name} holds {len(members):,} archive members (the limit is "
            f"{limits.max_members:,}); refused as a possible zip bomb.",
            file_name=name,
        )
    expanded = sum(member.file_size for member in members)
    # Compressed data cannot exceed the file itself, whatever the headers claim.
    compressed = max(1, min(sum(member.compress_size for member in members), len(source.data)))
    ratio = expanded / compressed
    too_big = expanded > limits.max_expanded_bytes
    too_dense = expanded > limits.ratio_floor_bytes and ratio > limits.max_ratio
    if too_big or too_dense:
        limit = (
            f"the limit is {human_bytes(limits.max_expanded_bytes)}"
            if too_big
            else f"the limit is {limits.max_ratio:g}:1"
        )
        raise PossibleZipBomb(
            f"{name} expands to {human_bytes(expanded)} (ratio {ratio:,.0f}:1; {limit}); "
            "refused as a possible zip bomb.",
            file_name=name,
        )


def human_bytes(size: float) -> str:
    if size < 1024:
        return f"{size:.0f} bytes"
    for unit in ("KiB", "MiB"):
        size /= 1024
        if size < 1024:
            return f"{size:.1f} {unit}"
    return f"{size / 1024:.1f} GiB"
