"""Notion blocks -> Markdown: every supported type, nesting, tables, pagination, real shapes."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from ingest.notion.blocks import page_title, properties_lines, render_blocks, render_page
from ingest.notion.client import NotionClient
from tests.fake_notion import FakeNotion, Workspace
from tests.fake_notion import builders as b

CURATED = Path("/work/shared/notion/responses/curated")


def render(*specs: b.BlockSpec) -> str:
    """Markdown of a page holding `specs`, fetched from the workspace's JSON shapes."""
    ws = Workspace()
    page = ws.add_page("Page", specs)
    return render_page(page, _children_of(ws)).markdown


def _children_of(ws: Workspace) -> Any:
    def fetch(block_id: str) -> list[dict[str, Any]]:
        return [ws.block_json(c, "2025-09-03") for c in ws.visible_children(ws.nodes[block_id])]

    return fetch


def test_paragraph_rich_text_keeps_links_and_flattens_mentions() -> None:
    markdown = render(
        b.paragraph(
            [
                "See ",
                b.text("the guide", link="https://example.com/guide"),
                ", ask ",
                b.mention_user("Grace"),
                " about ",
                b.mention_page("c01166c6-13ae-45cb-b968-18b4ef2f5a77", "Roadmap"),
                " before ",
                b.mention_date("2026-07-04"),
                "; run ",
                b.text("make", code=True),
                " where ",
                b.inline_equation("E = mc^2"),
                ".",
            ]
        )
    )

    assert markdown == (
        "See [the guide](https://example.com/guide), ask @Grace about Roadmap "
        "before 2026-07-04; run `make` where $E = mc^2$."
    )


def test_headings_and_toggleable_heading_children() -> None:
    markdown = render(
        b.heading(1, "Title"),
        b.heading(2, "Section"),
        b.heading(3, "Detail"),
        b.heading(2, "Folded", b.paragraph("hidden until opened")),
    )

    assert markdown == ("# Title\n\n## Section\n\n### Detail\n\n## Folded\n\nhidden until opened")


def test_nested_bulleted_and_numbered_lists_indent_and_count() -> None:
    markdown = render(
        b.bulleted("fruit", b.bulleted("apple", b.bulleted("green")), b.bulleted("pear")),
        b.bulleted("bread"),
        b.numbered("first"),
        b.numbered("second", b.numbered("second, part one")),
        b.paragraph("break"),
        b.numbered("again one"),
    )

    assert markdown == (
        "- fruit\n  - apple\n    - green\n  - pear\n- bread\n"
        "1. first\n2. second\n   1. second, part one\n\n"
        "break\n\n"
        "1. again one"
    )


def test_to_dos_keep_their_state() -> None:
    assert render(b.todo("ship it", checked=True), b.todo("celebrate")) == (
        "- [x] ship it\n- [ ] celebrate"
    )


def test_toggle_quote_and_callout_keep_their_children() -> None:
    markdown = render(
        b.toggle("Question?", b.paragraph("Answer.")),
        b.quote("Simple is better."),
        b.callout("Heads up", "⚠️", b.paragraph("details inside")),
    )

    assert markdown == (
        "Question?\n  Answer.\n\n> Simple is better.\n\n> ⚠️ Heads up\n>\n> details inside"
    )


def test_code_keeps_language_and_caption() -> None:
    markdown = render(b.code("print('hi')\nprint('bye')", "python", caption="greeting"))

    assert markdown == "```python\nprint('hi')\nprint('bye')\n```\ngreeting"


def test_table_rows_become_a_markdown_table() -> None:
    markdown = render(b.table([["Tool", "Use"], ["ruff", "lint | format"], ["mypy"]]))

    assert markdown == ("| Tool | Use |\n| --- | --- |\n| ruff | lint \\| format |\n| mypy |  |")


def test_divider_links_media_and_equations() -> None:
    markdown = render(
        b.divider(),
        b.bookmark("https://example.com", "Example site"),
        b.embed("https://twitter.com/x/status/1"),
        b.image("Architecture diagram"),
        b.image(),  # no caption: nothing worth indexing
        b.file_block("budget.xlsx"),
        b.equation("a^2 + b^2 = c^2"),
    )

    assert markdown == (
        "---\n\n[Example site](https://example.com)\n\n"
        "[https://twitter.com/x/status/1](https://twitter.com/x/status/1)\n\n"
        "Image: Architecture diagram\n\nFile: budget.xlsx\n\n$$\na^2 + b^2 = c^2\n$$"
    )


def test_synced_block_copies_follow_their_original() -> None:
    original = "4815032e-6f24-43e4-bc8c-9bdc6299b090"
    markdown = render(
        b.synced_original(b.paragraph("Shared footer text"), id=original),
        b.paragraph("middle"),
        b.synced_copy(original),
    )

    assert markdown == "Shared footer text\n\nmiddle\n\nShared footer text"


def test_columns_are_read_in_order() -> None:
    markdown = render(b.columns([b.paragraph("left")], [b.paragraph("right")]))

    assert markdown == "left\n\nright"


def test_child_pages_and_databases_become_links_and_are_listed() -> None:
    ws = Workspace()
    page = ws.add_page("Parent", [b.paragraph("intro")])
    child = ws.add_page("Child notes", [b.paragraph("not inlined")], parent=page)
    database, _ = ws.add_database("Tasks", parent=page)

    rendered = render_page(page, _children_of(ws))

    assert rendered.child_pages == [(child, "Child notes")]
    assert rendered.child_databases == [(database, "Tasks")]
    assert "not inlined" not in rendered.markdown
    assert f"[Child notes](https://www.notion.so/{child.replace('-', '')})" in rendered.markdown


def test_unknown_block_types_are_skipped_with_a_debug_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="ingest.notion.blocks"):
        markdown = render(
            b.paragraph("before"),
            b.block_of_new_type("meeting_notes"),
            b.unsupported(),
            b.table_of_contents(),
            b.paragraph("after"),
        )

    assert markdown == "before\n\nafter"
    assert any("meeting_notes" in r.getMessage() for r in caplog.records)


def test_children_are_read_through_every_page_of_results() -> None:
    ws = Workspace()
    page = ws.add_page(
        "Long",
        [b.paragraph(f"line {i}") for i in range(7)]
        + [b.bulleted("list", *[b.bulleted(f"sub {i}") for i in range(5)])],
    )
    with FakeNotion(ws, max_page_size=2) as fake:
        client = NotionClient(ws.token, base_url=fake.url, requests_per_second=0)
        markdown = render_page(page, client.list_children).markdown

        assert fake.count("blocks.children") == 4 + 3  # 8 blocks / 2, 5 sub-items / 2
    assert [f"line {i}" for i in range(7)] == markdown.split("\n\n")[:7]
    assert markdown.endswith("- list\n" + "\n".join(f"  - sub {i}" for i in range(5)))


def test_database_row_properties_become_lines() -> None:
    ws = Workspace()
    page = ws.add_page("Home")
    _, source = ws.add_database(
        "Projects",
        parent=page,
        schema={
            "Status": "select",
            "Tags": "multi_select",
            "Due": "date",
            "Done": "checkbox",
            "Budget": "number",
            "Notes": "rich_text",
        },
    )
    row = ws.add_row(
        source,
        {
            "Name": "Apollo",
            "Status": "Active",
            "Tags": ["a", "b"],
            "Due": "2026-08-01",
            "Done": True,
            "Budget": 1200,
        },
    )

    page_json = ws.page_json(ws.nodes[row], "2025-09-03")

    assert page_title(page_json) == "Apollo"
    assert properties_lines(page_json) == [
        "Status: Active",
        "Tags: a, b",
        "Due: 2026-08-01",
        "Done: yes",
        "Budget: 1200",
    ]


# --- real recorded shapes (skipped when the reference data is absent) ---------------------

needs_curated = pytest.mark.skipif(not CURATED.is_dir(), reason=f"{CURATED} not present")


def _curated(name: str) -> Any:
    data = json.loads((CURATED / name).read_text())
    return data["response"]["body"] if "response" in data and "request" in data else data


def _no_children(_block_id: str) -> Iterable[dict[str, Any]]:
    return []


@needs_curated
def test_recorded_block_of_every_type_converts_without_error() -> None:
    for path in sorted(CURATED.glob("block_*.json")):
        body = _curated(path.name)
        blocks = body["results"] if body.get("object") == "list" else [body]
        render_blocks(blocks, _no_children)  # must not raise on any real shape


@needs_curated
def test_recorded_all_types_page_converts_to_expected_markdown() -> None:
    body = _curated("block_children_all_types.json")
    rows = _curated("block_children_table_rows.json")["results"]
    table_id = next(b["id"] for b in body["results"] if b["type"] == "table")

    rendered = render_blocks(body["results"], lambda block_id: rows if block_id == table_id else [])

    md = rendered.markdown
    for expected in (
        "# Heading 1",
        "## Heading 2",
        "### Heading 3",
        "- Bulleted list",
        "1. Numbered list",
        "> Quote",
        "---",
        "```shell\n% ls -l\n```",
        "$$\nx = \\frac{-b\\pm\\sqrt{b^2-4ac}}{2a}\n$$",
        "- [ ] ",
        "[https://hkob.notion.site/](https://hkob.notion.site/)",
        "| Title | Contents |\n| --- | --- |\n| Title 1 | Contents 1 |",
    ):
        assert expected in md, expected
    assert [t for _, t in rendered.child_pages] == ["Child page"]
    assert [t for _, t in rendered.child_databases] == ["Child database"]


@needs_curated
def test_recorded_mentions_and_properties_read_as_text() -> None:
    paragraph = _curated("block_paragraph_inline_mentions_equation.json")
    text = render_blocks([paragraph], _no_children).markdown
    assert text.startswith("Inline contents: @Hiroyuki KOBAYASHI, notion_ruby_mapping_test_data")
    assert "$y = f(x)$" in text

    row = _curated("page_in_data_source.json")
    lines = properties_lines(row)
    assert "StatusTitle: In progress" in lines and "CheckboxTitle: yes" in lines
    assert "MultiSelectTitle: Multi Select 2, Multi Select 1" in lines
    assert "TextTitle: def" in lines


@needs_curated
def test_recorded_paginated_children_join_in_order() -> None:
    pages = [_curated(f"block_children_paginated_p{i}.json") for i in (1, 2, 3)]
    assert pages[0]["next_cursor"] == pages[1]["results"][0]["id"]  # cursor = next item id
    blocks = [block for page in pages for block in page["results"]]

    markdown = render_blocks(blocks, _no_children).markdown

    assert markdown == "\n\n".join(f"paragraph {i}" for i in range(5))
