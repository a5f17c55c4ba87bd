"""Markdown: kept as Markdown (heading-aware splitting needs the `#` lines).

Title: the front matter's `title:` if there is one, else the first heading (ATX or
setext, never a `#` line inside a code fence), else none. Front matter is not body text.
"""

from __future__ import annotations

import re

import yaml
from markdown_it import MarkdownIt

from ingest.errors import EmptyFile
from ingest.loaders.encoding import decode_text
from ingest.loaders.normalise import normalise_text, one_line
from ingest.loaders.source import Extracted, Part, SourceFile

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_PARSER = MarkdownIt("commonmark")
_TITLE_WINDOW = 20_000


def load_markdown(source: SourceFile) -> Extracted:
    decoded = decode_text(source)
    text = decoded.text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    front_title, text = _split_front_matter(text)
    text = normalise_text(text, keep_indentation=True)
    if not text:
        raise EmptyFile(f"{source.name} has no text (only front matter).", file_name=source.name)
    return Extracted(
        parts=[Part(text)],
        title=front_title or first_heading(text),
        metadata={"encoding": decoded.encoding},
    )


def first_heading(markdown: str) -> str | None:
    # The title is near the top; parsing a bounded prefix keeps huge files cheap.
    tokens = _PARSER.parse(markdown[:_TITLE_WINDOW])
    for index, token in enumerate(tokens[:-1]):
        if token.type == "heading_open":
            title = one_line(re.sub(r"[*_`]+", "", tokens[index + 1].content))
            if title:
                return title
    return None


def _split_front_matter(text: str) -> tuple[str | None, str]:
    match = _FRONT_MATTER.match(text)
    if not match:
        return None, text
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return None, text  # a horizontal rule that happens to open the file
    if not isinstance(data, dict):
        return None, text
    title = data.get("title")
    return (one_line(str(title)) if title else None), text[match.end() :]
