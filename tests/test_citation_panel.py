"""What a citation's side panel shows: the whole passage, the quotes highlighted, where
it comes from and a link to that place. The Markdown is rendered with a CommonMark
parser (markdown-it, as strict as Chainlit's remark) to check what a reader sees."""

from __future__ import annotations

from typing import Any

import pytest
from markdown_it import MarkdownIt

from chat_app.handlers.citation_panel import (
    find_quote,
    highlighted_markdown,
    location,
    open_link,
    panel_markdown,
    quoted_sentences,
    text_fragment,
)
from retrieval.chain import Citation
from retrieval.passages import Passage

HARVEST = (
    "Harvest. Harvest at the Quimby orchard begins on the ninth of\n"
    "September. Pickers are paid by the crate (see [12]).\n\n"
    "# Not a heading, *not emphasis*, <b>not HTML</b> & 1. not a list"
)


def render(markdown: str) -> str:
    return MarkdownIt("commonmark").render(markdown)


def passage(text: str = HARVEST, **metadata: Any) -> Passage:
    source_type = metadata.pop("source_type", "file")
    return Passage(
        chunk_id="c1",
        text=text,
        source_type=source_type,
        source_id=metadata.pop("source_id", "quimby-orchard.pdf"),
        source_url=metadata.pop("source_url", None),
        chunk_index=0,
        score=1.0,
        metadata=metadata,
    )


def test_a_quote_is_found_across_line_breaks_and_neutralised_citations() -> None:
    quote = "Harvest at the Quimby orchard begins on the ninth of September."
    span = find_quote(HARVEST, quote)
    assert span is not None
    assert HARVEST[span[0] : span[1]] == (
        "Harvest at the Quimby orchard begins on the ninth of\nSeptember."
    )
    # Extractive quotes write a passage's own "[12]" as "(12)".
    span = find_quote(HARVEST, "Pickers are paid by the crate (see (12)).")
    assert span is not None and HARVEST[span[0] : span[1]].endswith("[12]).")


def test_a_cut_quote_matches_its_beginning_and_a_foreign_one_nothing() -> None:
    span = find_quote(HARVEST, "Pickers are paid by the …")
    assert span is not None and HARVEST[span[0] : span[1]] == "Pickers are paid by the"
    assert find_quote(HARVEST, "Pickers are paid by the hour.") is None
    assert find_quote(HARVEST, "") is None
    assert find_quote("the cratered road", "the crate") is None  # whole words only


def test_the_quotes_of_an_answer_are_read_back_by_citation_number() -> None:
    answer = (
        "No language model is configured, so here are the most relevant passages:\n\n"
        "> “Harvest at the Quimby orchard begins on the ninth of September.” [1]\n"
        "> “Pickers are paid by the crate.” [1]\n"
        "> “The Quimby orchard grows 312 pear trees.” [2]\n"
        'A model may quote too: "the slope faces the river" [2, 3]'
    )
    assert quoted_sentences(answer) == {
        1: (
            "Harvest at the Quimby orchard begins on the ninth of September.",
            "Pickers are paid by the crate.",
        ),
        2: ("The Quimby orchard grows 312 pear trees.", "the slope faces the river"),
        3: ("the slope faces the river",),
    }


def test_the_passage_is_shown_verbatim_and_only_the_quote_is_bold() -> None:
    quote = "Harvest at the Quimby orchard begins on the ninth of September."
    html = render(highlighted_markdown(HARVEST, [find_quote(HARVEST, quote) or (0, 0)]))
    assert html.count("<strong>") == 1
    assert (
        "<strong>Harvest at the Quimby orchard begins on the ninth of\nSeptember.</strong>" in html
    )
    # The passage's own markup characters stay text.
    assert "<h1>" not in html and "<em>" not in html and "<ol>" not in html
    assert "# Not a heading, *not emphasis*, &lt;b&gt;not HTML&lt;/b&gt; &amp; 1. not a list" in (
        html
    )


def test_line_start_markup_of_a_passage_stays_text() -> None:
    text = "Steps\n1. open\n2) close\n- dash\n+ plus\n> quote\n===\n---\n  # indented"
    html = render(highlighted_markdown(text, []))
    assert html == (
        "<p>Steps\n1. open\n2) close\n- dash\n+ plus\n&gt; quote\n===\n---\n# indented</p>\n"
    )


def test_a_quote_over_two_paragraphs_is_bold_in_each() -> None:
    text = "First part of the quote\n\nends here. After."
    html = render(highlighted_markdown(text, [(0, text.index(" After"))]))
    assert "<strong>First part of the quote</strong>" in html
    assert "<strong>ends here.</strong> After." in html


def test_bold_holds_next_to_letters_and_punctuation() -> None:
    text = "(See note.)Next sentence"
    html = render(highlighted_markdown(text, [(0, text.index("Next"))]))
    assert "<strong>(See note.)</strong>" in html


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"page": 3}, "page 3"),
        ({"page": 5, "page_label": "iv"}, "page iv (page 5 of the file)"),
        ({"line_start": 10, "line_end": 19}, "lines 10–19"),
        ({"sheet": "Budget", "line_start": 4, "line_end": 4}, "sheet Budget, line 4"),
        ({"headings": "Setup > Install"}, "section “Setup > Install”"),
        ({}, None),
    ],
)
def test_location_names_the_place_in_the_source(
    metadata: dict[str, Any], expected: str | None
) -> None:
    assert location(passage(**metadata)) == expected


def test_a_pdf_opens_at_its_page_and_notion_at_its_page() -> None:
    pdf = Citation(1, passage(page=2))
    assert open_link(pdf, "/kb/files/k") == ("Open the file at page 2", "/kb/files/k#page=2")
    notion = Citation(
        1, passage(source_type="notion", source_id="abc", source_url="https://notion.so/abc")
    )
    assert open_link(notion, None) == ("Open the page in Notion", "https://notion.so/abc")
    assert open_link(Citation(1, passage(source_id="a.docx")), None) is None
    assert open_link(Citation(1, passage(source_id="a.docx")), "/f") == ("Open the file", "/f")


def test_a_text_file_opens_at_the_quote_or_else_at_its_section() -> None:
    text = "## Cooling\n\nThe reactor is cooled by liquid\nxenon from the northern tank."
    cited = Citation(1, passage(text, source_id="reactor.md", headings="Reactor > Cooling"))
    label, url = open_link(cited, "/f", ["The reactor is cooled by liquid xenon from the"]) or (
        "",
        "",
    )
    assert label == "Open the file at the quote"
    assert url == "/f#:~:text=The%20reactor%20is%20cooled,xenon%20from%20the"
    assert open_link(cited, "/f") == ("Open the file at this section", "/f#:~:text=Cooling")


def test_text_fragments_encode_the_directive_syntax() -> None:
    assert text_fragment("a-b, c & d") == "#:~:text=a%2Db%2C%20c%20%26%20d"
    assert text_fragment("   ") is None


def test_the_panel_says_where_the_passage_comes_from_and_shows_all_of_it() -> None:
    long_text = HARVEST + "\n\n" + "Filler sentence about pears. " * 30
    cited = Citation(
        2,
        passage(long_text, page=2, title="Quimby orchard guide", space_name="Farm team"),
        quotes=("Pickers are paid by the crate (see (12)).",),
    )
    markdown = panel_markdown(cited, quotes=cited.quotes, file_url="/kb/files/k")
    html = render(markdown)
    assert "<h3>Quimby orchard guide</h3>" in html
    assert "File quimby-orchard.pdf · space Farm team · page 2" in html
    assert '<a href="/kb/files/k#page=2">Open the file at page 2</a>' in html
    assert "<strong>Pickers are paid by the crate (see [12]).</strong>" in html
    assert html.count("Filler sentence about pears.") == 30  # the whole passage, not a snippet
    # A PDF's layout line breaks flow (a text file keeps its own, see above).
    assert "begins on the ninth of September." in html
