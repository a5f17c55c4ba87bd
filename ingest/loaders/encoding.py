"""Bytes to text for the text formats: BOM, declared charset, UTF-8, then detection."""

from __future__ import annotations

import codecs
import unicodedata
from dataclasses import dataclass

from charset_normalizer import from_bytes
from charset_normalizer.cd import coherence_ratio
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
    "cp1250",
    "cp1252",
    "cp1254",
    "cp1257",
    "cp1258",
    "latin_1",
    "mac_iceland",
    "mac_latin2",
    "mac_roman",
    "mac_turkish",
    "hp_roman8",
    "cp437",
    "cp775",
    "cp850",
    "cp852",
    "cp857",
    "cp858",
    "cp860",
    "cp861",
    "cp863",
    "cp865",
    *(f"iso8859_{n}" for n in (2, 3, 4, 9, 10, 13, 14, 15, 16)),
}
# Share of control characters above which "text" is really binary.
_MAX_CONTROL_SHARE = 0.02
# Characters examined by the plausibility checks (enough to judge, cheap on big files).
_SAMPLE = 20000
# Share of NUL bytes above which the bytes are not tried as UTF-8.
_MAX_NUL_SHARE = 0.1


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
                break  # damaged or a BOM-like prefix: the checks below decide
    if declared:
        label = declared.strip().lower()
        encoding = "cp1252" if label in _READ_AS_CP1252 else label
        try:
            return _checked(source, data.decode(encoding), codecs.lookup(encoding).name)
        except (LookupError, UnicodeDecodeError):
            pass  # a wrong or unknown label: the bytes decide
    # Many NULs mean UTF-16/32 without a BOM (which is also valid UTF-8): let detection
    # judge. A few stray NULs (or zero padding at the end) do not make a text file binary.
    if data.rstrip(b"\x00").count(0) <= len(data) * _MAX_NUL_SHARE:
        try:
            return _checked(source, data.decode("utf-8"), "utf-8")
        except UnicodeDecodeError:
            if (mixed := _mostly_utf8(data)) is not None:
                return _checked(source, mixed, "utf-8+cp1252")
    return _detect(source)


def _cp1252_fallback(error: UnicodeError) -> tuple[str, int]:
    assert isinstance(error, UnicodeDecodeError)
    bad = error.object[error.start : error.end]
    return bytes(bad).decode("cp1252", errors="replace"), error.end


codecs.register_error("kb-cp1252-fallback", _cp1252_fallback)


def _mostly_utf8(data: bytes) -> str | None:
    """UTF-8 with a few stray Windows-1252 bytes (text pasted together from several
    sources), read as such; None when the invalid bytes are not a small minority."""
    replaced = data.decode("utf-8", errors="replace")
    bad = replaced.count("\ufffd")
    good = sum(1 for ch in replaced if not ch.isascii()) - bad
    if good < 10 * bad:
        return None
    return data.decode("utf-8-sig", errors="kb-cp1252-fallback")


def _detect(source: SourceFile) -> DecodedText:
    best = from_bytes(source.data).best()
    if best is None:
        raise _binary(source)
    encoding, text = best.encoding, str(best)
    if encoding != "cp1252" and (western := _as_western(source.data, encoding, text)):
        encoding, text = "cp1252", western
    return _checked(source, text, encoding)


def _as_western(data: bytes, detected: str, detected_text: str) -> str | None:
    """The windows-1252 reading when it is at least as plausible as the detected one.

    charset-normalizer often names cp1250 (or, on a few bytes, even an Arabic code page)
    for Western European text. windows-1252 is by far the commonest legacy encoding
    (Windows and Office exports), so it wins when it reads as no more garbled than a
    Latin-script rival, or, against another script, when its accented letters are a
    minority of the letters (Cyrillic or Greek read as windows-1252 is all accents).
    """
    if len(detected_text) != len(data):
        return None  # a multi-byte detection (UTF-16, Shift-JIS...) is never second-guessed
    try:
        western = data.decode("cp1252")
    except UnicodeDecodeError:
        return None
    if detected in _LATIN_SINGLE_BYTE:
        ours, theirs = western[:_SAMPLE], detected_text[:_SAMPLE]
        mess_ours, mess_theirs = mess_ratio(ours, 1.0), mess_ratio(theirs, 1.0)
        if mess_ours != mess_theirs:
            return western if mess_ours < mess_theirs else None
        # Equally clean: the reading that looks more like a real language wins (Turkish
        # keeps cp1254), and windows-1252 wins a full tie.
        return western if _coherence(ours) >= _coherence(theirs) else None
    letters = [ch for ch in western if ch.isalpha()]
    accented = [ch for ch in letters if not ch.isascii()]
    if (
        letters
        and len(accented) <= len(letters) * 0.5
        and all("LATIN" in unicodedata.name(ch, "") for ch in accented)
    ):
        return western
    return None


def _coherence(text: str) -> float:
    ratios = coherence_ratio(text)
    return ratios[0][1] if ratios else 0.0


def _checked(source: SourceFile, text: str, encoding: str) -> DecodedText:
    sample = text[:_SAMPLE]
    if sample:
        controls = sum(
            1
            for ch in sample
            if ch not in "\x00\t\n\r\f" and unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn")
        )
        if controls / len(sample) > _MAX_CONTROL_SHARE:
            raise _binary(source)
    return DecodedText(text=text, encoding=encoding)


def _binary(source: SourceFile) -> UnsupportedFile:
    return UnsupportedFile(
        f"{source.name} looks like binary data, not text.",
        file_name=source.name,
        hint="Upload documents in their own format (PDF, DOCX...) and text files as "
        "text (UTF-8, UTF-16, Windows-1252...).",
    )
