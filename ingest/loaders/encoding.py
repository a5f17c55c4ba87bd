"""Bytes to text for the text formats: BOM, declared charset, UTF-8, then detection."""

from __future__ import annotations

import codecs
import unicodedata
from dataclasses import dataclass

from charset_normalizer import from_bytes
from charset_normalizer.md import mess_ratio

from ingest.errors import UnsupportedFile
from ingest.loaders.source import SourceFile

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Browsers read these labels as windows-1252 (WHATWG Encoding Standard), and so do we:
# files labelled latin-1 routinely hold Windows quotes and euro signs in 0x80-0x9F.
_READ_AS_CP1252 = {"iso-8859-1", "iso8859-1", "latin-1", "latin1", "l1", "ascii", "us-ascii"}
# Single-byte Latin-script code pages that charset-normalizer cannot tell apart on short
# or mostly-ASCII text; when one of them wins, windows-1252 gets the tie (see _detect).
_LATIN_SINGLE_BYTE = {
    "cp1250", "cp1252", "cp1254", "cp1257", "cp1258", "latin_1", "mac_iceland",
    "mac_latin2", "mac_roman", "mac_turkish", "hp_roman8", "cp437", "cp775", "cp850",
    "cp852", "cp857", "cp858", "cp860", "cp861", "cp863", "cp865",
    *(f"iso8859_{n}" for n in (2, 3, 4, 9, 10, 13, 14, 15, 16)),
}
# Share of control characters above which "text" is really binary.
_MAX_CONTROL_SHARE = 0.02


@dataclass(frozen=True)
class DecodedText:
    text: str
    encoding: str


def decode_text(source: SourceFile, *, declared: str | None = None) -> DecodedText:
    """Decode the file's bytes, or raise UnsupportedFile when they are not text."""
    data = source.data
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return _checked(source, data.decode(encoding), encoding)
            except UnicodeDecodeError:
                break  # a stray BOM-like prefix: fall through to detection
    if declared:
        label = declared.strip().lower()
        encoding = "cp1252" if label in _READ_AS_CP1252 else label
        try:
            return _checked(source, data.decode(encoding), codecs.lookup(encoding).name)
        except (LookupError, UnicodeDecodeError):
            pass  # a wrong or unknown label: the bytes decide
    if b"\x00" not in data:
        try:
            return _checked(source, data.decode("utf-8"), "utf-8")
        except UnicodeDecodeError:
            pass
    return _detect(source)


def _detect(source: SourceFile) -> DecodedText:
    best = from_bytes(source.data).best()
    if best is None:
        raise _binary(source)
    encoding = best.encoding
    text = str(best)
    if encoding in _LATIN_SINGLE_BYTE and encoding != "cp1252":
        # charset-normalizer often names cp1250 for Western text; cp1252 is the far more
        # common source (Windows/Office exports), so it wins unless it reads as more garbled.
        try:
            western = source.data.decode("cp1252")
        except UnicodeDecodeError:
            western = None
        if western is not None and mess_ratio(western, 1.0) <= mess_ratio(text, 1.0):
            encoding, text = "cp1252", western
    return _checked(source, text, encoding)


def _checked(source: SourceFile, text: str, encoding: str) -> DecodedText:
    sample = text[:20000]
    if sample:
        controls = sum(
            1
            for ch in sample
            if ch not in "\t\n\r\f" and unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn")
        )
        if controls / len(sample) > _MAX_CONTROL_SHARE:
            raise _binary(source)
    return DecodedText(text=text, encoding=encoding)


def _binary(source: SourceFile) -> UnsupportedFile:
    return UnsupportedFile(
        f"{source.name} looks binary, not like {source.extension or 'text'} text.",
        file_name=source.name,
        hint="Upload documents in their own format (PDF, DOCX...) and text files as "
        "text (UTF-8, UTF-16, Windows-1252...).",
    )
