"""HTML: the page's main text (no scripts, styles, navigation), headings as Markdown.

The main content is `<main>`, `[role=main]` or a lone `<article>` when the page has one,
else `<body>`; inside it, navigation, sidebars, footers, forms, hidden elements and a
short list of well-known boilerplate classes (Wikipedia's edit links, navboxes...) go.
The charset is the declared one when it decodes the bytes, else detected.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any

from bs4 import BeautifulSoup, NavigableString, Tag, XMLParsedAsHTMLWarning
from bs4.dammit import EncodingDetector
from bs4.element import Comment, Declaration, Doctype, ProcessingInstruction

from ingest.errors import NoExtractableText
from ingest.loaders.encoding import decode_text
from ingest.loaders.normalise import normalise_text, one_line
from ingest.loaders.source import Extracted, Part, SourceFile

# Never text, wherever they are (the title is read before <head> goes).
_NEVER_TEXT = [
    "head",
    "script",
    "style",
    "noscript",
    "template",
    "svg",
    "canvas",
    "iframe",
    "object",
    "embed",
    "link",
    "meta",
]
# Page chrome, dropped inside the main content too.
_CHROME = ["nav", "aside", "footer", "form", "button", "input", "select", "textarea", "dialog"]
_DROP_ROLES = {
    "navigation",
    "banner",
    "contentinfo",
    "complementary",
    "search",
    "menu",
    "menubar",
    "toolbar",
    "dialog",
    "alert",
}
_BOILERPLATE = {
    "navbox",
    "vertical-navbox",
    "navigation",
    "breadcrumb",
    "breadcrumbs",
    "sidebar",
    "mw-editsection",
    "mw-jump",
    "mw-jump-link",
    "jump-to-nav",
    "noprint",
    "printfooter",
    "catlinks",
    "toc",
    "mw-navigation",
    "skip-link",
    "cookie-banner",
    "cookie-consent",
    "share-buttons",
    "advertisement",
}
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden")
_BLOCKS = {
    "p",
    "div",
    "section",
    "article",
    "main",
    "header",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "table",
    "thead",
    "tbody",
    "tfoot",
    "blockquote",
    "figure",
    "figcaption",
    "address",
    "details",
    "summary",
    "hr",
    "caption",
    "fieldset",
    "center",
}
_HEADINGS = {f"h{level}": level for level in range(1, 7)}
# EPUB chapters are XHTML; the HTML parser reads them well (and forgives broken ones).
warnings.filterwarnings("ignore", category=XMLParsedAsHTMLWarning)
_SPACES = re.compile(r"\s+")
_SKIPPED_STRINGS = (Comment, Declaration, Doctype, ProcessingInstruction)


def load_html(source: SourceFile) -> Extracted:
    declared = EncodingDetector.find_declared_encoding(source.data[:4096], is_html=True)
    decoded = decode_text(source, declared=declared)
    soup = BeautifulSoup(decoded.text, "lxml")
    title = _title(soup)
    for tag in soup.find_all(_NEVER_TEXT):
        tag.decompose()
    root = _main_content(soup)
    _strip_boilerplate(root, keep_header=root.name != "body")
    text = normalise_text(_render(root))
    if not text:
        raise NoExtractableText(
            f"{source.name} has no readable text (only markup, scripts or images).",
            file_name=source.name,
            hint="Save the page after it has loaded (File > Save page as, 'complete'), "
            "or copy its text into a .txt file.",
        )
    return Extracted(parts=[Part(text)], title=title, metadata={"encoding": decoded.encoding})


@dataclass(frozen=True)
class HtmlText:
    text: str
    title: str | None
    heading: str | None  # the first h1-h3, for documents whose <title> is generic


def html_text(markup: str | bytes) -> HtmlText:
    """The text of HTML found inside another format (EPUB chapters, e-mail bodies).

    Scripts, styles and hidden elements go, but no page-chrome guessing: these are
    documents in their own right, not web pages.
    """
    soup = BeautifulSoup(markup, "lxml")
    title = _title(soup)
    heading = next(
        (
            text
            for tag in soup.find_all(["h1", "h2", "h3"])
            if (text := one_line(tag.get_text(" ")))
        ),
        None,
    )
    for tag in soup.find_all(_NEVER_TEXT):
        tag.decompose()
    root: Tag = soup.body if soup.body is not None else soup
    for tag in [tag for tag in root.find_all(True) if _is_hidden(tag)]:
        if not tag.decomposed:
            tag.decompose()
    return HtmlText(normalise_text(_render(root)), title, heading)


def _is_hidden(tag: Tag) -> bool:
    if tag.attrs is None:
        return False
    return tag.has_attr("hidden") or bool(_HIDDEN_STYLE.search(str(tag.get("style", "")).lower()))


def _title(soup: BeautifulSoup) -> str | None:
    for candidate in (soup.title, soup.find("h1")):
        if candidate is not None and (text := one_line(candidate.get_text(" "))):
            return text
    meta = soup.find("meta", attrs={"property": "og:title"})
    if isinstance(meta, Tag) and (content := one_line(str(meta.get("content") or ""))):
        return content
    return None


def _main_content(soup: BeautifulSoup) -> Tag:
    articles = soup.find_all("article")
    for candidate in (
        soup.find("main"),
        soup.find(True, attrs={"role": "main"}),
        articles[0] if len(articles) == 1 else None,
    ):
        if isinstance(candidate, Tag) and candidate.get_text(strip=True):
            return candidate
    body = soup.body
    return body if body is not None else soup


def _strip_boilerplate(root: Tag, *, keep_header: bool) -> None:
    for tag in root.find_all(_CHROME if keep_header else [*_CHROME, "header"]):
        if not tag.decomposed:
            tag.decompose()
    doomed = [tag for tag in root.find_all(True) if _is_boilerplate(tag)]
    for tag in doomed:
        if not tag.decomposed:
            tag.decompose()


def _is_boilerplate(tag: Tag) -> bool:
    if tag.attrs is None:
        return False
    if tag.has_attr("hidden") or str(tag.get("aria-hidden", "")).lower() == "true":
        return True
    if str(tag.get("role", "")).lower() in _DROP_ROLES:
        return True
    if _HIDDEN_STYLE.search(str(tag.get("style", "")).lower()):
        return True
    names = {str(name).lower() for name in tag.get_attribute_list("class") if name}
    names.add(str(tag.get("id", "")).lower())
    return not names.isdisjoint(_BOILERPLATE)


def _render(root: Tag) -> str:
    """The text under `root` with block structure as line breaks and Markdown marks.

    Iterative (an explicit stack), because real pages nest deeper than Python recurses.
    """
    out: list[str] = []
    stack: list[tuple[Any, bool]] = [(child, False) for child in reversed(list(root.children))]
    while stack:
        node, preformatted = stack.pop()
        if isinstance(node, str) and not isinstance(node, NavigableString):
            out.append(node)  # a closing separator pushed below
            continue
        if isinstance(node, _SKIPPED_STRINGS):
            continue
        if isinstance(node, NavigableString):
            out.append(str(node) if preformatted else _SPACES.sub(" ", str(node)))
            continue
        if not isinstance(node, Tag):
            continue
        name = node.name
        if name in _HEADINGS:
            if heading := one_line(node.get_text(" ")):
                out.append(f"\n\n{'#' * _HEADINGS[name]} {heading}\n\n")
            continue
        if name == "br":
            out.append("\n")
            continue
        if name == "tr":
            cells = [
                one_line(cell.get_text(" "))
                for cell in node.find_all(["td", "th"], recursive=False)
            ]
            if any(cells):
                out.append("\n" + " | ".join(cells))
            continue
        if name == "pre":
            opening, closing, preformatted = "\n\n", "\n\n", True
        elif name == "li":
            opening, closing = "\n- ", ""
        elif name in _BLOCKS:
            opening, closing = "\n\n", "\n\n"
        else:
            opening, closing = "", ""
        out.append(opening)
        if closing:
            stack.append((closing, preformatted))
        stack.extend((child, preformatted) for child in reversed(list(node.children)))
    return "".join(out)
