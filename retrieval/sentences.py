"""Whole sentences of a passage, as spans of its text, for quoting.

A passage is a chunk: it may start or end in the middle of a sentence, and its text
comes from many formats. Lines are grouped into blocks first (a PDF wraps prose
over many lines; a list item, a Markdown heading, a table row or a CSV record is
one block of its own), then each prose block is cut into sentences by `sentencex`
(Wikimedia's rule-based segmenter, compiled, ~0.6 ms per 1,000-character chunk: it
knows "U.S.", "No. 5", "Fig. 2", "e.g.", "Dr.", initials and decimals; pySBD cuts the
same way but is 100x slower, which matters with 15 people asking at once).

Every span is a `Sentence` with offsets into the passage's raw text; `text` is that
span with runs of whitespace collapsed to one space (`normalise_space`), so a quote is
always a verbatim substring of `normalise_space(passage.text)`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache

from sentencex import segment

__all__ = [
    "Sentence",
    "locate_quote",
    "normalise_space",
    "quotable",
    "sentence_spans",
    "split_sentences",
]

# A list item: "- x", "* x", "• x", "1. x", "a) x".
_BULLET = re.compile(r"^\s*(?:[-*•▪◦‣]|\d{1,3}[.)]|[a-z][.)])\s+\S")
_BULLET_MARKER = re.compile(r"^\s*(?:[-*•▪◦‣]|\d{1,3}[.)]|[a-z][.)])\s+")
# A line that is a unit of its own: Markdown heading, table row, "key: value; ..." record.
_HEADING = re.compile(r"^\s*#{1,6}\s")
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$|^[^|\n]+(?:\s\|\s[^|\n]+){1,}$")
_RECORD = re.compile(r"^\s*[\w .-]{1,40}:\s[^;]*(?:;\s*[\w .-]{1,40}:\s[^;]*){1,}$")
_ENDS_SENTENCE = re.compile(r"[.!?…][\"'”’)\]]*(?:\d{1,3})?$")  # "action.6": a footnote
_STARTS_SENTENCE = re.compile(r"^[\"'“‘(\[]?[A-Z0-9ÄÖÜÀ-Þ§•*#-]")
_WORD = re.compile(r"[^\W\d_]{2,}", re.UNICODE)
# "51, Amendment 39-19512 ...": the tail of a number wrapped from the previous chunk.
_NUMBER_THEN_COMMA = re.compile(r"^\d+[,;)]")
# A wrapped line that is much shorter than its neighbours and ends without
# punctuation, followed by a capitalised line, is a heading in a PDF column
# ("Costs of Compliance" above "The FAA estimates ..."), not the start of a sentence.
_HEADING_LINE_RATIO = 0.6

MIN_WORDS = 4
MAX_SENTENCE_CHARS = 600


@dataclass(frozen=True)
class Sentence:
    """One quotable unit of a passage: `text[start:end]` of the raw passage text."""

    start: int
    end: int
    text: str  # whitespace-normalised
    # A sentence of prose (ends with punctuation) or a unit of its own (list item,
    # table row, record), which needs no punctuation to be whole.
    unit: bool = False
    # Cut by the chunk boundary: the passage starts or ends inside it.
    cut_start: bool = False
    cut_end: bool = False

    @property
    def whole(self) -> bool:
        return not (self.cut_start or self.cut_end)


def normalise_space(text: str) -> str:
    """Runs of whitespace (line breaks included) as one space, trimmed."""
    return " ".join(text.split())


@dataclass(frozen=True)
class _Block:
    start: int
    end: int
    unit: bool  # a list item / heading / row / record: no sentence splitting


def _lines(text: str) -> list[tuple[int, int]]:
    spans, position = [], 0
    for line in text.splitlines(keepends=True):
        spans.append((position, position + len(line.rstrip("\r\n"))))
        position += len(line)
    return spans


def _blocks(text: str) -> list[_Block]:
    """Consecutive lines joined into prose blocks; units kept on their own."""
    lines = [(s, e) for s, e in _lines(text)]
    widths = sorted(e - s for s, e in lines if text[s:e].strip())
    typical = widths[len(widths) * 3 // 4] if widths else 0
    blocks: list[_Block] = []
    current: list[tuple[int, int]] = []
    current_unit = False

    def close() -> None:
        nonlocal current, current_unit
        if current:
            blocks.append(_Block(current[0][0], current[-1][1], current_unit))
        current, current_unit = [], False

    for index, (start, end) in enumerate(lines):
        line = text[start:end]
        if not line.strip():
            close()
            continue
        if _HEADING.match(line) or _TABLE_ROW.match(line) or _RECORD.match(line):
            close()
            blocks.append(_Block(start, end, True))
            continue
        if _BULLET.match(line):
            close()
            current, current_unit = [(start, end)], True
            continue
        following = lines[index + 1] if index + 1 < len(lines) else None
        stripped = line.strip()
        short_title = (
            following is not None
            and typical
            and len(stripped) < _HEADING_LINE_RATIO * typical
            and not _ENDS_SENTENCE.search(stripped)
            and not stripped.endswith((",", ";", ":", "-", "–"))
            and text[following[0] : following[1]].lstrip()[:1].isupper()
        )
        if short_title:
            previous = text[current[-1][0] : current[-1][1]].strip() if current else ""
            if not previous or _ENDS_SENTENCE.search(previous):
                close()  # a heading line between two paragraphs: a block of its own
            current.append((start, end))
            close()
            continue
        current.append((start, end))
    close()
    return blocks


# "... corrective action.6 The FAA sent ...": a footnote number glued to a full stop
# hides the sentence end from the segmenter.
_FOOTNOTE_END = re.compile(r"(?<=[a-z)][.!?])\d{1,3}\s+(?=[A-Z])")


def _footnotes_split(segments: list[str]) -> list[str]:
    pieces = []
    for segment_text in segments:
        cut = 0
        for match in _FOOTNOTE_END.finditer(segment_text):
            pieces.append(segment_text[cut : match.end()].strip())
            cut = match.end()
        pieces.append(segment_text[cut:].strip())
    return [p for p in pieces if p]


@lru_cache(maxsize=8192)
def _segments(block: str) -> tuple[str, ...]:
    # Cached: overlapping chunks and repeated questions cut the same blocks again.
    return tuple(segment("en", block))


def sentence_spans(text: str) -> list[Sentence]:
    """Every sentence / unit of `text`, in order, with offsets into `text`.

    The first one is `cut_start` when the text does not begin at a sentence start,
    the last one `cut_end` when it stops before the sentence's end.
    """
    found: list[Sentence] = []
    for block in _blocks(text):
        raw = text[block.start : block.end]
        flat = re.sub(r"\s", " ", raw)  # same length as `raw`: offsets stay valid
        marker = _BULLET_MARKER.match(flat) if block.unit else None
        # The segmenter reads a leading "•" as a list and does not split it: skip it.
        body = marker.end() if marker else 0
        segments = [] if block.unit and not marker else [p.strip() for p in _segments(flat[body:])]
        segments = [p for p in segments if p]
        bullet = marker is not None
        # A list item is a unit, unless it runs on into sentences (a PDF's bullet
        # wraps over lines and there is no blank line to end it).
        unit = block.unit and not (bullet and len(segments) > 1)
        if unit:
            pieces = [(block.start, block.end)]
        else:
            pieces, cursor = [], body
            for piece in _footnotes_split(segments):
                at = flat.find(piece, cursor)
                if at < 0:  # the segmenter changed the text: keep the rest as one piece
                    pieces.append((block.start + cursor, block.end))
                    break
                pieces.append((block.start + at, block.start + at + len(piece)))
                cursor = at + len(piece)
        for start, end in pieces:
            words = normalise_space(text[start:end])
            if words:
                found.append(Sentence(start, end, words, unit=unit))
    if not found:
        return found
    first, last = found[0], found[-1]
    # A unit (record, list item, row) starts at a line start: whole unless the
    # neighbouring chunk shows otherwise (retrieval.stitching).
    if not first.unit and (
        not _STARTS_SENTENCE.match(first.text) or _NUMBER_THEN_COMMA.match(first.text)
    ):
        found[0] = replace(first, cut_start=True)
    if not last.unit and not _ENDS_SENTENCE.search(last.text):
        found[-1] = replace(found[-1], cut_end=True)
    return found


def quotable(sentence: Sentence) -> bool:
    """Whole, long enough to say something, short enough to be one sentence, ending
    like a sentence (list items and records need not), and mostly words (not a page
    header, a heading, a bare citation or a row of numbers)."""
    if not sentence.whole or len(sentence.text) > MAX_SENTENCE_CHARS:
        return False
    text = sentence.text
    if text.startswith("#") or not any(c.islower() for c in text):
        return False  # a heading ("## Costs", "D. CALCULATION OF FEES")
    if not sentence.unit and not _ENDS_SENTENCE.search(text):
        return False  # prose without a full stop: a title or label ("(a) Comments Due Date")
    return len(text.split()) >= MIN_WORDS and len(_WORD.findall(text)) >= MIN_WORDS - 1


def split_sentences(text: str) -> list[str]:
    """The quotable sentences of `text`, whitespace-normalised, in order."""
    return [s.text for s in sentence_spans(text) if quotable(s)]


def locate_quote(text: str, quote: str) -> tuple[int, int] | None:
    """Where `quote` (whitespace-normalised) is in the raw `text`: (start, end), or None.

    The citation panel uses it to highlight a quote in the passage as stored.
    """
    words = quote.split()
    if not words:
        return None
    match = re.search(r"\s+".join(re.escape(w) for w in words), text)
    return (match.start(), match.end()) if match else None
