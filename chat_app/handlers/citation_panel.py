"""What a citation's side panel shows, as Markdown for Chainlit's Text element.

The whole passage, with the sentences the answer quoted from it highlighted, under a
header that says where it comes from (title, page or section, file or Notion page,
space) and a link that opens the source at that place: a PDF at its page, a text or
HTML file at the quoted words (a text fragment), a Notion page as it is.

Passages are shown as text, never as markup: every Markdown character is escaped, and
the only markup added is bold around the quotes (`public/kb.css` paints bold inside a
side panel as a highlighter).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import quote as url_quote

from retrieval.chain import Citation
from retrieval.passages import Passage

__all__ = [
    "find_quote",
    "highlighted_markdown",
    "location",
    "open_link",
    "panel_markdown",
    "quoted_sentences",
    "text_fragment",
]

# Any ASCII punctuation may be backslash-escaped in CommonMark (escaping one too many
# is harmless). These start markup anywhere: emphasis, code, links and images, HTML,
# tables, strikethrough, directives (remark-directive), entities, math.
_INLINE_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|~:&$])")
# These only at the start of a line: headings, quotes, lists, rules, setext underlines.
_LINE_SPECIAL = re.compile(r"^([ \t]*)([#>+\-=]|\d+(?=[.)]))", re.MULTILINE)
_WORD = re.compile(r"\w+")
_PARAGRAPH_BREAK = re.compile(r"(\n[ \t]*\n)")
_LAYOUT_BREAK = re.compile(r"(?<!\n)\n(?!\n)")
# A quote and its citations in an answer: “…” [1] or "…" [1][2] or “…” [1, 2].
_QUOTED = re.compile(
    r"(?:“([^”]+)”|\"([^\"\n]+)\")\s*((?:\[\d+(?:\s*,\s*\d+)*\]\s*)+)",
)
_NUMBERS = re.compile(r"\d+")
_CLOSING = ".!?;:…\"'”’)"
# Formats the browser shows inline (see chat_app/storage.py), where a text fragment
# (#:~:text=) scrolls to and marks the quoted words.
_TEXT_FRAGMENT_SUFFIXES = frozenset({".txt", ".text", ".md", ".markdown", ".csv", ".tsv"})
_FRAGMENT_WORDS = 8


def _escape(text: str) -> str:
    text = _INLINE_SPECIAL.sub(r"\\\1", text)
    return _LINE_SPECIAL.sub(_escape_line_start, text)


def _escape_line_start(match: re.Match[str]) -> str:
    indent, marker = match.groups()
    # "1." -> "1\.": the list marker is the punctuation after the number.
    return indent + (marker + "\\" if marker[0].isdigit() else "\\" + marker)


def quoted_sentences(answer_text: str) -> dict[int, tuple[str, ...]]:
    """The sentences an answer quotes, by the citation number that follows each quote.

    Extractive answers are quotes (`> “sentence” [n]`); an LLM may quote too. This is
    the fallback when `Citation.quotes` is empty.
    """
    found: dict[int, list[str]] = {}
    for match in _QUOTED.finditer(answer_text):
        sentence = (match.group(1) or match.group(2) or "").strip()
        if not sentence:
            continue
        for number in _NUMBERS.findall(match.group(3)):
            quotes = found.setdefault(int(number), [])
            if sentence not in quotes:
                quotes.append(sentence)
    return {number: tuple(quotes) for number, quotes in found.items()}


def find_quote(text: str, quote: str) -> tuple[int, int] | None:
    """Where `quote` is in `text` (start, end), whatever the whitespace, line breaks and
    punctuation between its words; None when its words are not there in that order.

    Quotes are whitespace-normalised and may end with " …" (cut) or have "[12]" turned
    into "(12)", so the match is made on the words.
    """
    cut = quote.rstrip().endswith("…")
    core = quote.strip().removesuffix("…").strip()
    words = _WORD.findall(core)
    if not words:
        return None
    pattern = r"(?<!\w)" + r"[\W_]+".join(re.escape(w) for w in words)
    if not cut:
        pattern += r"(?!\w)"
    match = re.search(pattern, text) or re.search(pattern, text, re.IGNORECASE)
    if match is None:
        return None
    start, end = match.span()
    # Keep the quote's closing punctuation ('."' or '?)') where the text has the same;
    # a ")" of the quote may be a "]" of the text (see neutralize_citations).
    for char in core[len(core.rstrip(_CLOSING)) :]:
        if end < len(text) and (text[end] == char or (char == ")" and text[end] == "]")):
            end += 1
        else:
            break
    return start, end


def _merged(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _bold(text: str, before: str, after: str) -> str:
    """`text` in bold, its surrounding whitespace outside the markers (else no emphasis);
    `before` and `after` are the characters next to it."""
    core = text.strip()
    if not core:
        return _escape(text)
    lead = text[: len(text) - len(text.lstrip())]
    trail = text[len(text.rstrip()) :]
    # "**" must be left-/right-flanking: next to a letter on the outside and punctuation
    # on the inside it is not; a space keeps the emphasis (a hair space would be
    # invisible but is not whitespace to every Markdown parser).
    if not lead and before[-1:].isalnum() and not core[0].isalnum():
        lead = " "
    if not trail and after[:1].isalnum() and not core[-1].isalnum():
        trail = " "
    return f"{lead}**{_escape(core)}**{trail}"


def highlighted_markdown(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """`text` as Markdown that shows it verbatim, the `spans` in bold.

    Line breaks are kept (Chainlit renders paragraphs with `white-space: pre-wrap`);
    bold cannot cross a blank line, so a span over two paragraphs is bolded in each.
    """
    pieces: list[str] = []
    position = 0
    for start, end in _merged(spans):
        pieces.append(_escape(text[position:start]))
        cursor = start
        for part in _PARAGRAPH_BREAK.split(text[start:end]):
            if part and not _PARAGRAPH_BREAK.fullmatch(part):
                after = cursor + len(part)
                pieces.append(_bold(part, text[cursor - 1 : cursor], text[after : after + 1]))
            else:
                pieces.append(part)
            cursor += len(part)
        position = end
    pieces.append(_escape(text[position:]))
    # Leading spaces would turn a line into a code block.
    return "\n".join(line.lstrip() for line in "".join(pieces).split("\n"))


def location(passage: Passage) -> str | None:
    """Where in its source the passage is: page, slide, sheet, chapter, lines, section.

    Loaders of formats without pages describe the place themselves (`location`:
    "slide 3", "sheet Budget, rows 2-26", "chapter 2: Title")."""
    metadata = passage.metadata
    if passage.location:
        return passage.location
    parts: list[str] = []
    if passage.page is not None:
        label = metadata.get("page_label")
        if label and str(label) != str(passage.page):
            parts.append(f"page {label} (page {passage.page} of the file)")
        else:
            parts.append(f"page {passage.page}")
    for key in ("slide", "sheet", "chapter"):
        if metadata.get(key) not in (None, ""):
            parts.append(f"{key} {metadata[key]}")
    first, last = metadata.get("line_start"), metadata.get("line_end")
    if first is not None:
        parts.append(f"lines {first}–{last}" if last not in (None, first) else f"line {first}")
    if metadata.get("headings"):
        parts.append(f"section “{metadata['headings']}”")
    return ", ".join(parts) or None


def _fragment_term(words: Sequence[str]) -> str:
    # In a text directive "-", "&" and "," are syntax: percent-encode them too.
    return url_quote(" ".join(words), safe="").replace("-", "%2D")


def text_fragment(text: str) -> str | None:
    """`#:~:text=` that makes the browser scroll to and mark `text`, as it is laid out in
    the file. A term cannot cross a line break of a text file, so a text over several
    lines becomes "first words of its first line,last words of its last line"."""
    lines = [line.split() for line in text.strip().split("\n")]
    lines = [words for words in lines if words]
    if not lines:
        return None
    first, last = lines[0], lines[-1]
    if len(lines) == 1 and len(first) <= _FRAGMENT_WORDS:
        return "#:~:text=" + _fragment_term(first)
    half = _FRAGMENT_WORDS // 2
    return f"#:~:text={_fragment_term(first[:half])},{_fragment_term(last[-half:])}"


def open_link(
    citation: Citation, file_url: str | None, quotes: Sequence[str] = ()
) -> tuple[str, str] | None:
    """(label, URL) that opens the cited source at the cited place, if it can be opened."""
    if citation.source_type == "notion":
        return ("Open the page in Notion", citation.url) if citation.url else None
    if citation.url:
        return ("Open the source", citation.url)
    if not file_url:
        return None
    suffix = Path(citation.source_id).suffix.lower()
    if suffix == ".pdf" and citation.page is not None:
        return f"Open the file at page {citation.page}", f"{file_url}#page={citation.page}"
    if suffix in _TEXT_FRAGMENT_SUFFIXES:
        passage = citation.passage
        span = next((found for q in quotes if (found := find_quote(passage.text, q))), None)
        if span is not None:
            target, label = passage.text[span[0] : span[1]], "Open the file at the quote"
        else:  # the nearest heading
            heading = str(passage.metadata.get("headings") or "").rsplit(" > ", 1)[-1]
            target, label = heading.lstrip("#").strip(), "Open the file at this section"
        fragment = text_fragment(target) if target else None
        if fragment:
            return label, file_url + fragment
    return "Open the file", file_url


def _kind(citation: Citation) -> str:
    return "Notion page" if citation.source_type == "notion" else "File"


def panel_markdown(citation: Citation, *, quotes: Sequence[str], file_url: str | None) -> str:
    """The side panel of one citation: header, link, then the whole passage highlighted."""
    passage = citation.passage
    facts = [_kind(citation)]
    if citation.title != citation.source_id and citation.source_type == "file":
        facts[0] = f"File {citation.source_id}"
    space = passage.metadata.get("space_name")
    if space and space != "Personal":  # a shared space is named; one's own goes unsaid
        facts.append(f"space {space}")
    where = location(passage)
    if where:
        facts.append(where)
    lines = [f"### {_escape(citation.title)}", "", "*" + _escape(" · ".join(facts)) + "*"]
    link = open_link(citation, file_url, quotes)
    if link:
        label, url = link
        lines += ["", f"[{label}]({url.replace(' ', '%20').replace(')', '%29')})"]
    text = passage.text.strip("\n")
    if Path(citation.source_id).suffix.lower() == ".pdf":
        # A PDF's line breaks are where its layout wrapped, not the author's: the text
        # flows in the panel. (Same length: the quotes' positions do not move.)
        text = _LAYOUT_BREAK.sub(" ", text)
    spans = [span for q in quotes if (span := find_quote(text, q))]
    missing = [q for q in quotes if find_quote(text, q) is None]
    lines += ["", "---", ""]
    if missing:  # should not happen; the reader still sees what was quoted
        lines += ["*Quoted:* " + " / ".join(f"“{_escape(q)}”" for q in missing), ""]
    lines.append(highlighted_markdown(text, spans))
    return "\n".join(lines)
