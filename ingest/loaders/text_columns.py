"""Plain text laid out in columns, put back into reading order.

`pdftotext -layout` output, fixed-width reports and text copied out of multi-column
layouts place two or three columns side by side on each line. Read line by line, the
columns interleave ("The FAA proposes to this material at the FAA, call 206-231-"), and
every sentence is garbage. `in_column_order` reads such a page column by column instead.

Pages are separated by form feeds (as pdftotext writes them); a text without one is one
page. A page is read in columns only when all of this holds, so that prose, Markdown,
code, CSV and aligned tables come out unchanged:

* it has at least `_MIN_LINES` non-blank lines (short texts carry too little evidence);
* a gutter exists: a run of at least `_MIN_GUTTER` character positions that hold a
  character on at most `_MAX_GUTTER_SHARE` of the lines, or on one (headers, footers
  and the odd overlong line may cross it), with text on both sides of it on at least
  `_MIN_BOTH_SIDES` of the lines (so a left margin or a ragged right edge is no gutter);
* at most `_MAX_SPANNING_SHARE` of the lines cannot be cut at the gutters, i.e. have no
  run of two or more spaces there (a header or footer across the page is fine, a table
  whose rows wrap or a paragraph of prose is not);
* every column reads like running text: its median line holds at least
  `_MIN_COLUMN_CHARS` characters and `_MIN_COLUMN_WORDS` words, and at least
  `_MIN_CONTINUATIONS` of its lines that follow another line start in lower case
  (sentences run on from line to line). An aligned table fails this: its cells are
  short, or each row starts anew with a capital, a digit or a symbol. Text in a script
  without case (Chinese, Japanese...) therefore also stays as it is.

Lines that cannot be cut at the gutters (a page header, a footer, a title across the
columns), and a page's first and last line when a blank line sets them off and they
reach across a gutter, end the columns above them, stand on their own line, and new columns start
below them; this also keeps pages apart in a text whose form feeds were lost.

Within a column a single blank row between two lines is dropped: pdftotext writes one
whenever another column's baseline falls between two of this column's lines, and it
would otherwise split a sentence into two paragraphs. Two or more blank rows stay one
paragraph break when the line above them can end a paragraph (., :, ?, a closing
bracket or quote...); mid-sentence they are a figure or a margin note beside the column.

A word hyphenated at a line end ("pro-" / "posed") is joined when the joined word occurs
elsewhere in the text, with its hyphen when only the hyphenated form does, and left
alone otherwise ("FAA-" / "approved" stays apart unless "FAA-approved" occurs
elsewhere): without a dictionary, the text itself is the only safe judge. This is done
on pages read in columns only.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise

__all__ = ["in_column_order"]

_MIN_LINES = 8
_MIN_GUTTER = 2
_MAX_GUTTER_SHARE = 0.05
_MIN_BOTH_SIDES = 0.4
_MAX_SPANNING_SHARE = 0.15
_MIN_COLUMN_CHARS = 20
_MIN_COLUMN_WORDS = 4
_MIN_CONTINUATIONS = 0.25
# Gutters are looked for this far into a line: layout lines are a page wide, and a very
# long line (a URL, a data blob) must not cost memory.
_MAX_WIDTH = 1000

_WORDS = re.compile(r"\S+")
# A paragraph break inside a column only after a line that can end a paragraph.
_SENTENCE_END = re.compile(r"[.!?:;)\]\"'\u2019\u201d]$")
_CUT = re.compile(r" {2,}")
_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")
_HYPHENATED_END = re.compile(r"([^\W\d_]+)-$")
# The next line's first word, and what sticks to it ("posed," moves up whole).
_FIRST_WORD = re.compile(r"([^\W\d_]+)(\S*)")

Gutter = tuple[int, int]


def in_column_order(text: str) -> str:
    """The text with each page laid out in columns read column by column.

    Pages not laid out in columns (see the module docstring for what that takes) are
    returned exactly as they were; a text without any such page is returned unchanged.
    """
    pages = text.replace("\r\n", "\n").replace("\r", "\n").split("\f")
    read = [_page_in_column_order(page) for page in pages]
    if all(result is None for result in read):
        return text
    words = _vocabulary(text)
    out = []
    for page, result in zip(pages, read, strict=True):
        out.append(page if result is None else "\n".join(_join_hyphenated(result, words)))
    return "\f".join(out)


def _page_in_column_order(page: str) -> list[str] | None:
    """The page's lines in column order, or None when it is not laid out in columns."""
    lines = [line.expandtabs().rstrip() for line in page.split("\n")]
    filled = [line for line in lines if line]
    if len(filled) < _MIN_LINES:
        return None
    gutters = _gutters(filled)
    if not gutters:
        return None
    rows = [_cut(line, gutters) for line in lines]
    _keep_header_and_footer_whole(lines, rows)
    spanning = sum(1 for line, row in zip(lines, rows, strict=True) if line and row is None)
    if spanning > _MAX_SPANNING_SHARE * len(filled):
        return None
    columns = [[row[index] for row in rows if row is not None] for index in range(len(gutters) + 1)]
    if not all(_reads_as_prose(column) for column in columns):
        return None
    out: list[str] = []
    for part in _merged(_bands(lines, rows), gutters):
        if isinstance(part, str):
            out.append(part.strip())
        else:
            out.extend(_band_in_column_order(part))
    return out


def _keep_header_and_footer_whole(lines: list[str], rows: list[list[str] | None]) -> None:
    """A page's first or last line, set off by a blank line, stays one line.

    A running header or footer ("VerDate ... Jkt 250001   PO 00000   Frm 00007") often has
    gaps at the gutters; cut, its pieces would end up inside the columns' sentences.
    """
    filled = [index for index, line in enumerate(lines) if line]
    for edge, neighbour in ((filled[0], filled[0] + 1), (filled[-1], filled[-1] - 1)):
        row = rows[edge]
        if not lines[neighbour] and row is not None and sum(1 for p in row if p.strip()) > 1:
            rows[edge] = None


@dataclass
class _Band:
    """Consecutive lines that all cut at the same gutters."""

    lines: list[str]
    gutters: list[Gutter]


def _bands(lines: list[str], rows: list[list[str] | None]) -> list[list[str] | str]:
    """The lines grouped into runs that cut at the gutters, and the lines between them."""
    parts: list[list[str] | str] = [[]]
    for line, row in zip(lines, rows, strict=True):
        if row is None:
            parts += [line, []]
        else:
            part = parts[-1]
            assert isinstance(part, list)
            part.append(line)
    return [part for part in parts if part]


def _merged(parts: list[list[str] | str], gutters: list[Gutter]) -> list[_Band | str]:
    """Bands at their own gutters, joined across a line that cuts at one band's gutters.

    In a text whose form feeds were lost the page-wide gutters are only those all pages
    share, and a line whose gap sits a little to the side of them then splits a page;
    the page's own gutters, found from its band, cut it, and the page stays one band.
    A line with no text above or below it in its band (a page's header or footer) stays
    apart.
    """
    out: list[_Band | str] = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
            continue
        band = _Band(part, _local_gutters(part, gutters))
        # Only a line with text above and below it: a page's footer or header stays apart.
        if (
            len(out) >= 2
            and isinstance(out[-1], str)
            and isinstance(before := out[-2], _Band)
            and any(before.lines)
            and any(band.lines)
        ):
            joined = [*before.lines, out[-1], *band.lines]
            fitting = [g for g in (before.gutters, band.gutters) if _cuts_all(joined, g)]
            if fitting:
                out[-2:] = [_Band(joined, fitting[0])]
                continue
        out.append(band)
    return out


def _local_gutters(lines: list[str], gutters: list[Gutter]) -> list[Gutter]:
    """The band's own gutters when it has enough lines to tell, else the page's."""
    filled = [line for line in lines if line]
    if len(filled) < _MIN_LINES:
        return gutters
    local = _gutters(filled)
    return local if len(local) == len(gutters) and _cuts_all(lines, local) else gutters


def _cuts_all(lines: list[str], gutters: list[Gutter]) -> bool:
    return all(_cut(line, gutters) is not None for line in lines if line)


def _gutters(lines: list[str]) -> list[Gutter]:
    """Runs of positions blank on nearly every line with text on both sides on many."""
    width = min(max(len(line) for line in lines), _MAX_WIDTH)
    starts = [0] * (width + 1)
    for line in lines:
        for word in _WORDS.finditer(line, 0, width):
            starts[word.start()] += 1
            starts[word.end()] -= 1
    occupied, running = [], 0
    for delta in starts[:width]:
        running += delta
        occupied.append(running)
    # One line may always cross (a short page's header).
    limit = max(1, int(_MAX_GUTTER_SHARE * len(lines)))
    runs: list[Gutter] = []
    for position, count in enumerate(occupied):
        if count > limit:
            continue
        if runs and runs[-1][1] == position:
            runs[-1] = (runs[-1][0], position + 1)
        else:
            runs.append((position, position + 1))
    gutters: list[Gutter] = []
    for start, end in runs:
        if end - start < _MIN_GUTTER:
            continue
        # Two runs closer than a column is wide are one gutter that the ragged edge of
        # the column on its left (or indented text on its right) crosses a little.
        if gutters and start - gutters[-1][1] < _MIN_COLUMN_CHARS:
            gutters[-1] = (gutters[-1][0], end)
        else:
            gutters.append((start, end))
    bounds = [(len(line) - len(line.lstrip(" ")), len(line)) for line in lines]
    return [
        (start, end)
        for start, end in gutters
        if sum(1 for first, last in bounds if first < start and last > end)
        >= _MIN_BOTH_SIDES * len(lines)
    ]


def _cut(line: str, gutters: list[Gutter]) -> list[str] | None:
    """The line's piece in each column, or None when some gutter holds no cut.

    A cut is a run of two or more spaces overlapping the gutter (the widest, then the
    one nearest its middle), or the line ending before the gutter's far side.
    """
    pieces = []
    position = 0
    for start, end in gutters:
        if position > start:
            pieces.append("")  # the previous cut's spaces reach across this gutter too
            continue
        if len(line) <= end:
            pieces.append(line[position:])
            position = len(line)
            continue
        middle = (start + end) / 2
        best: tuple[int, int] | None = None
        best_key = (0, 0.0)
        for gap in _CUT.finditer(line, position):
            if gap.start() >= end:
                break
            if gap.end() <= start:
                continue
            key = (gap.end() - gap.start(), -abs((gap.start() + gap.end()) / 2 - middle))
            if best is None or key > best_key:
                best, best_key = (gap.start(), gap.end()), key
        if best is None:
            if position >= len(line) or not line[position:].strip():
                pieces.append("")
                continue
            return None
        pieces.append(line[position : best[0]])
        position = best[1]
    pieces.append(line[position:])
    return pieces


def _reads_as_prose(column: list[str]) -> bool:
    texts = [piece.strip() for piece in column]
    filled = [piece for piece in texts if piece]
    if len(filled) < _MIN_LINES // 2:
        return False
    if statistics.median(len(piece) for piece in filled) < _MIN_COLUMN_CHARS:
        return False
    if statistics.median(len(piece.split()) for piece in filled) < _MIN_COLUMN_WORDS:
        return False
    following = [current for previous, current in pairwise(texts) if previous and current]
    lower = sum(1 for piece in following if piece[0].islower())
    return bool(following) and lower >= _MIN_CONTINUATIONS * len(following)


def _band_in_column_order(band: _Band) -> list[str]:
    """The band column by column, without the blank rows left by other baselines."""
    rows = [row for line in band.lines if (row := _cut(line, band.gutters)) is not None]
    out: list[str] = []
    for index in range(len(band.gutters) + 1):
        pieces = [row[index].strip() for row in rows]
        lines: list[str] = []
        blanks = 0
        for piece in pieces:
            if not piece:
                blanks += 1
                continue
            if lines and blanks >= 2 and _SENTENCE_END.search(lines[-1]):
                lines.append("")
            lines.append(piece)
            blanks = 0
        out.extend(lines)
    return out


def _vocabulary(text: str) -> Counter[str]:
    return Counter(word.lower() for word in _WORD.findall(text))


def _join_hyphenated(lines: list[str], words: Counter[str]) -> list[str]:
    """Join "pro-" / "posed" where the text itself spells the word out elsewhere."""
    out = list(lines)
    emptied = set()
    for index in range(len(out) - 1):
        end = _HYPHENATED_END.search(out[index])
        start = _FIRST_WORD.match(out[index + 1])
        if not end or not start or not start.group(1)[0].islower():
            continue
        head, tail = end.group(1), start.group(1)
        # This occurrence is in the vocabulary as its two halves, never as the joined
        # word, so any count is another occurrence.
        if words[(head + tail).lower()]:
            joined = head + tail
        elif words[f"{head}-{tail}".lower()]:
            joined = f"{head}-{tail}"
        else:
            continue
        out[index] = out[index][: end.start()] + joined + start.group(2)
        out[index + 1] = out[index + 1][start.end() :].lstrip()
        if not out[index + 1]:
            emptied.add(index + 1)
    return [line for index, line in enumerate(out) if index not in emptied]
