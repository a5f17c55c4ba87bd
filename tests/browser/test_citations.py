"""Citations a person can check, in a real browser: one chat, two documents, three
questions; every [n] of every answer opens that answer's passage with its quote
highlighted, live, after a reload and after resuming the chat from the sidebar.

Screenshots of each step go to the test's tmp dir (`screenshots/`), and of every
open page to `test-artifacts/` when a step fails.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page

from chat_app.handlers.citation_panel import quoted_sentences
from tests.browser.harness import (
    INDEXING_S,
    UI_WAIT_S,
    ask,
    login,
    screenshots_on_failure,
    wait_reply_done,
)

pytestmark = pytest.mark.browser

# Distinct facts on different pages of two PDFs.
REACTOR_PAGES = [
    "Zorblatt reactor operating manual. This manual describes the reactor hall. "
    "The Zorblatt reactor operates at exactly 4217 kelvin during the night shift. "
    "Visitors must sign the logbook at the entrance.",
    "Cooling. The reactor is cooled by liquid xenon pumped from the northern tank. "
    "The tank is refilled by truck every month.",
    "Maintenance happens every second Tuesday; the crew wears blue suits. "
    "Spare parts are kept in the basement store.",
]
ORCHARD_PAGES = [
    "The Quimby orchard guide. The Quimby orchard grows 312 pear trees on the southern "
    "slope. The slope faces the river and gets sun all afternoon.",
    "Harvest. Harvest at the Quimby orchard begins on the ninth of September. "
    "Pickers are paid by the crate.",
]
# Question -> the fact its [1] must show (each from another page).
QUESTIONS = {
    "At what temperature does the Zorblatt reactor operate?": "4217 kelvin",
    "How many pear trees grow in the Quimby orchard?": "312 pear trees",
    "When does the harvest at the Quimby orchard begin?": "ninth of September",
}
HIGHLIGHT = "rgba(250, 204, 21, 0.4)"  # chat_app/public/kb.css
# The side panel slides in from the right; a screenshot waits until it is all in view.
_PANEL_SLID_IN = (
    "() => { const t = document.getElementById('side-view-title');"
    " return !!t && t.getBoundingClientRect().right <= window.innerWidth; }"
)
_FOOTER_ENTRY = re.compile(r"\[(\d+)\]\s*([\w.-]+\.pdf), p\. (\d+)")


def make_pdf(path: Path, pages: list[str]) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text, new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))
    return path


def _words(text: str) -> str:
    return " ".join(text.split())


class Shots:
    """Numbered screenshots of one test, in its tmp dir."""

    def __init__(self, page: Page, folder: Path) -> None:
        self.page, self.folder, self.count = page, folder, 0
        folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, name: str) -> None:
        self.count += 1
        self.page.screenshot(path=str(self.folder / f"{self.count:02d}-{name}.png"))


def _answers(page: Page) -> Locator:
    return page.locator(".ai-message", has_text="Sources:")


def _no_panel_open(page: Page) -> None:
    # kb.js closes what Chainlit opens by itself; give it the same time a click gets.
    page.wait_for_timeout(1500)
    assert page.locator("#side-view-content").count() == 0, "a side panel opened by itself"


def _check_citations(page: Page, base: str, shots: Shots, phase: str) -> int:
    """Click every [n] of every answer; each shows that answer's passage for n with
    its quote highlighted. Returns how many panels were checked."""
    answers = _answers(page)
    assert answers.count() == len(QUESTIONS)
    checked = 0
    for i, fact in enumerate(QUESTIONS.values()):
        answer = answers.nth(i)
        text = answer.inner_text()
        quotes = quoted_sentences(text)
        footer = {int(n): (name, page_no) for n, name, page_no in _FOOTER_ENTRY.findall(text)}
        assert quotes and set(quotes) <= set(footer), text
        for number, sentences in sorted(quotes.items()):
            answer.locator("a.element-link", has_text=f"[{number}]").first.click()
            title = page.locator("#side-view-title")
            title.filter(has_text=f"[{number}]").wait_for(timeout=UI_WAIT_S * 1000)
            content = page.locator("#side-view-content")
            marks = content.locator(".side-text .font-bold")
            marks.first.wait_for(timeout=UI_WAIT_S * 1000)  # fetched after a reload
            panel = content.inner_text()
            # Exactly this answer's passage: one element, its source and page.
            assert content.locator(".side-text").count() == 1
            name, page_no = footer[number]
            assert name in panel and f"page {page_no}" in panel, (phase, i, number, panel)
            highlighted = _words(" ".join(marks.all_inner_texts()))
            for sentence in sentences:
                assert _words(sentence.removesuffix("…")) in highlighted, (
                    phase,
                    i,
                    number,
                    sentence,
                    panel,
                )
            assert marks.first.evaluate("e => getComputedStyle(e).backgroundColor") == HIGHLIGHT
            if number == 1:
                assert fact in _words(panel)
                page.wait_for_function(_PANEL_SLID_IN, timeout=UI_WAIT_S * 1000)
                shots(f"{phase}-answer{i + 1}-citation{number}")
            link = content.get_by_role("link", name=f"Open the file at page {page_no}")
            href = link.get_attribute("href") or ""
            assert href.endswith(f"#page={page_no}")
            served = page.request.get(base + href.split("#")[0])
            assert served.status == 200 and served.headers["content-type"] == "application/pdf"
            assert served.headers["content-disposition"].startswith("inline")
            checked += 1
    return checked


def test_every_citation_opens_its_own_passage_live_after_reload_and_after_resume(
    server: str,
    browser: Browser,
    make_user: Callable[..., Any],
    tmp_path: Path,
) -> None:
    make_user("alice")
    reactor = make_pdf(tmp_path / "zorblatt-manual.pdf", REACTOR_PAGES)
    orchard = make_pdf(tmp_path / "quimby-orchard.pdf", ORCHARD_PAGES)
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    shots = Shots(page, tmp_path / "screenshots")
    with screenshots_on_failure([page], "citations"):
        login(page, server, "alice", "password123")
        assert page.locator("script[src='/public/kb.js']").count() == 1
        page.set_input_files("#upload-button-input", [str(reactor), str(orchard), str(empty)])
        page.wait_for_selector("text=empty.pdf", timeout=UI_WAIT_S * 1000)
        ask(page, "Here are my documents")
        summary = page.locator(".ai-message", has_text="You can ask about it now")
        summary.wait_for(timeout=INDEXING_S * 1000)
        wait_reply_done(page)
        assert "zorblatt-manual.pdf" in summary.inner_text()
        assert "quimby-orchard.pdf" in summary.inner_text()
        assert "empty.pdf is empty (0 bytes); nothing was indexed." in summary.inner_text()
        shots("uploaded")
        thread_id = page.url.rstrip("/").rsplit("/", 1)[-1]

        for i, question in enumerate(QUESTIONS):
            ask(page, question)
            _answers(page).nth(i).wait_for(timeout=INDEXING_S * 1000)
            wait_reply_done(page)
            _no_panel_open(page)
        shots("three-answers")
        live = _check_citations(page, server, shots, "live")

        page.reload()
        _answers(page).nth(len(QUESTIONS) - 1).wait_for(timeout=UI_WAIT_S * 1000)
        _no_panel_open(page)
        shots("reloaded")
        assert _check_citations(page, server, shots, "reload") == live

        page.goto(server + "/")
        page.wait_for_selector("#chat-settings-open-modal", timeout=UI_WAIT_S * 1000)
        chat = page.locator(f"#thread-history a[href*='{thread_id}']").first
        # Named after the first question, not after the upload's remark.
        assert chat.inner_text().strip() == next(iter(QUESTIONS))
        chat.click()
        page.wait_for_url(re.compile(f".*/thread/{thread_id}"), timeout=UI_WAIT_S * 1000)
        _answers(page).nth(len(QUESTIONS) - 1).wait_for(timeout=UI_WAIT_S * 1000)
        _no_panel_open(page)
        shots("resumed")
        assert _check_citations(page, server, shots, "resume") == live

        # What is indexed: both documents, not the empty one.
        ask(page, "/sources")
        listing = page.locator(".ai-message", has_text="quimby-orchard.pdf").last
        listing.wait_for(timeout=UI_WAIT_S * 1000)
        wait_reply_done(page)
        assert "zorblatt-manual.pdf" in listing.inner_text()
        assert "empty.pdf" not in listing.inner_text()
        shots("sources")

    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log and "Either path or content" not in log


def test_what_is_in_my_knowledge_base_lists_both_documents(
    server: str, browser: Browser, make_user: Callable[..., Any], tmp_path: Path
) -> None:
    make_user("alice")
    reactor = make_pdf(tmp_path / "zorblatt-manual.pdf", REACTOR_PAGES)
    orchard = make_pdf(tmp_path / "quimby-orchard.pdf", ORCHARD_PAGES)
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    with screenshots_on_failure([page], "citations-overview"):
        login(page, server, "alice", "password123")
        page.set_input_files("#upload-button-input", [str(reactor), str(orchard)])
        page.wait_for_selector("text=quimby-orchard.pdf", timeout=UI_WAIT_S * 1000)
        ask(page, "Here are my documents")
        page.locator(".ai-message", has_text="You can ask about it now").wait_for(
            timeout=INDEXING_S * 1000
        )
        wait_reply_done(page)
        ask(page, "What is in my knowledge base?")
        answer = _answers(page).last
        answer.wait_for(timeout=INDEXING_S * 1000)
        wait_reply_done(page)
        text = answer.inner_text()
        assert "zorblatt-manual.pdf" in text and "quimby-orchard.pdf" in text
        page.screenshot(path=str(tmp_path / "overview.png"))
