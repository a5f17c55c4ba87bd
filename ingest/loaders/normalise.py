"""Text clean-up shared by every format: one notion of whitespace and of junk characters."""

from __future__ import annotations

import re
import unicodedata

# PDF fonts often map ligatures to single code points; "ﬁle" would then never match "file"
# in full-text search, so spell them out.
_LIGATURES = {"ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "st", "ﬆ": "st"}
_LIGATURE = re.compile("|".join(_LIGATURES))
# Invisible characters that only get in the way of search and splitting.
_DROPPED = re.compile("[\x00\u00ad\u200b\u200c\u200d\u2060\ufeff]")
# Controls other than tab/newline (form feeds become line breaks first).
_CONTROL = re.compile(r"[\x01-\x08\x0b\x0e-\x1f\x7f-\x9f]")
_HORIZONTAL = re.compile(r"[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def normalise_text(text: str, *, keep_indentation: bool = False) -> str:
    """NFC, no NULs or control characters, runs of spaces collapsed, at most one blank line.

    `keep_indentation` leaves leading spaces alone (Markdown code blocks and nested lists
    depend on them).
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n")
    text = text.replace("\u2028", "\n").replace("\u2029", "\n\n")
    text = _LIGATURE.sub(lambda match: _LIGATURES[match.group()], _DROPPED.sub("", text))
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub("", text)
    lines = []
    for line in text.split("\n"):
        if keep_indentation:
            body = line.lstrip(" \t")
            indent = line[: len(line) - len(body)].replace("\t", "    ")
            lines.append(indent + _HORIZONTAL.sub(" ", body).rstrip() if body else "")
        else:
            lines.append(_HORIZONTAL.sub(" ", line).strip())
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip("\n")


def one_line(text: str) -> str:
    """Collapse all whitespace, for titles, table cells and record values."""
    return " ".join(normalise_text(text).split())
