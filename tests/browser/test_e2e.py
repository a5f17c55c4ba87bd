"""The app as a person uses it, in a real browser (Playwright + Debian chromium).

`kb serve` runs on a free port against a fresh test database with the real
embedding model and no LLM (extractive answers); see conftest.py. Screenshots of
every open page are saved to `test-artifacts/` when a step fails.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, Page
from sqlalchemy.engine import Engine

from tests.browser.harness import (
    ARTIFACTS,
    INDEXING_S,
    UI_WAIT_S,
    ask,
    login,
    screenshots_on_failure,
    wait_reply_done,
    wait_until,
)
from tests.fake_notion import FakeNotion

pytestmark = pytest.mark.browser

FACT = "The Zorblatt reactor operates at exactly 4217 kelvin during the night shift."
QUESTION = "At what temperature does the Zorblatt reactor operate?"


def _make_pdf(path: Path) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 8, "Zorblatt reactor operating manual", new_x="LMARGIN", new_y="NEXT")
    pdf.multi_cell(0, 8, FACT, new_x="LMARGIN", new_y="NEXT")
    pdf.multi_cell(
        0,
        8,
        "The reactor is cooled by liquid xenon pumped from the northern tank.",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.add_page()
    pdf.multi_cell(
        0,
        8,
        "Maintenance happens every second Tuesday; the crew wears blue suits.",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.output(str(path))
    return path


def test_upload_ask_cite_resume_and_isolation(
    server: str,
    browser: Browser,
    make_user: Callable[..., Any],
    tmp_path: Path,
    engine: Engine,
) -> None:
    make_user("alice")
    make_user("bob")
    pdf = _make_pdf(tmp_path / "zorblatt-manual.pdf")
    alice = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    pages = [alice]
    with screenshots_on_failure(pages, "e2e"):
        alice.goto(server + "/")
        alice.wait_for_selector("#email", timeout=30_000)
        alice.screenshot(path=str(ARTIFACTS / "e2e-login.png"))
        login(alice, server, "alice", "password123")
        alice.screenshot(path=str(ARTIFACTS / "e2e-welcome.png"))

        # Upload through the attachment button; the file is sent with a message.
        alice.set_input_files("#upload-button-input", str(pdf))
        alice.wait_for_selector("text=zorblatt-manual.pdf", timeout=30_000)
        ask(alice, "Here is the reactor manual.")
        alice.wait_for_selector("text=Used zorblatt-manual.pdf", timeout=INDEXING_S * 1000)
        alice.wait_for_selector(
            ".ai-message >> text=/Indexed zorblatt-manual\\.pdf \\(\\d+ chunks\\)/",
            timeout=INDEXING_S * 1000,
        )
        wait_reply_done(alice)
        alice.screenshot(path=str(ARTIFACTS / "e2e-upload.png"), full_page=True)
        thread_url = alice.url

        # A question only the file answers: cited answer and the source element.
        ask(alice, QUESTION)
        answer = alice.locator(".ai-message", has_text="4217").last
        answer.wait_for(timeout=120_000)
        wait_reply_done(alice)
        assert "Sources:" in answer.inner_text()
        answer.locator(".positive-feedback-off").click()
        alice.click("#submit-feedback")  # the optional-comment dialog
        answer.locator(".positive-feedback-on").wait_for(timeout=15_000)
        answer.get_by_role("link", name="[1]").first.click()
        alice.locator("#side-view-content", has_text="zorblatt-manual.pdf").wait_for(timeout=15_000)
        alice.screenshot(path=str(ARTIFACTS / "e2e-answer.png"), full_page=True)

        # Reload, open the chat from the sidebar: the conversation comes back.
        alice.goto(server + "/")
        alice.wait_for_selector("#chat-settings-open-modal", timeout=30_000)
        thread_id = thread_url.rstrip("/").rsplit("/", 1)[-1]
        # The attachment comes back from PostgreSQL through the authenticated route.
        with alice.expect_response(
            lambda r: "/kb/files/" in r.url and r.status == 200, timeout=30_000
        ) as attachment:
            alice.locator(f"#thread-history a[href*='{thread_id}']").first.click()
        attachment_url = attachment.value.url
        alice.wait_for_url(re.compile(f".*/thread/{thread_id}"), timeout=30_000)
        alice.locator(".ai-message", has_text="4217").first.wait_for(timeout=30_000)
        ask(alice, "What is it cooled by?")
        alice.locator(".ai-message", has_text="xenon").last.wait_for(timeout=120_000)
        wait_reply_done(alice)
        alice.screenshot(path=str(ARTIFACTS / "e2e-resumed.png"), full_page=True)
        with engine.connect() as conn:
            thumbs = conn.execute(sa.text("SELECT value FROM feedbacks")).scalars().all()
        assert thumbs == [1]

        # Another user: the first user's document is not used.
        bob = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        pages.append(bob)
        login(bob, server, "bob", "password123")
        ask(bob, QUESTION)
        wait_reply_done(bob)
        reply = bob.locator(".ai-message").last
        reply.wait_for(timeout=60_000)
        assert "don't know" in reply.inner_text()
        assert "4217" not in bob.content()
        assert bob.locator("#thread-history a[href*='" + thread_id + "']").count() == 0
        assert bob.request.get(attachment_url).status == 404
        bob.screenshot(path=str(ARTIFACTS / "e2e-second-user.png"), full_page=True)


def test_connect_notion_resync_and_ask_about_a_page(
    server: str,
    browser: Browser,
    make_user: Callable[..., Any],
    notion: FakeNotion,
    engine: Engine,
) -> None:
    make_user("carol")
    token = notion.workspace.token
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    with screenshots_on_failure([page], "e2e-notion"):
        login(page, server, "carol", "password123")
        ask(page, "/notion")
        page.get_by_role("button", name="Connect Notion").click()
        page.wait_for_selector("text=internal integration token", timeout=30_000)
        ask(page, token)
        page.locator(".ai-message", has_text="is connected to Acme").wait_for(timeout=30_000)
        assert token not in page.content()  # the reply carrying it is gone from the chat

        page.get_by_role("button", name="Re-sync now").last.click()
        summary = page.locator(".ai-message", has_text="Notion sync success").last
        summary.wait_for(timeout=INDEXING_S * 1000)
        assert "0 errors" in summary.inner_text()
        page.screenshot(path=str(ARTIFACTS / "e2e-notion-synced.png"), full_page=True)

        ask(page, "How many days of paid leave does every employee have?")
        answer = page.locator(".ai-message", has_text="twenty-five").last
        answer.wait_for(timeout=120_000)
        wait_reply_done(page)
        assert "Notion: Team handbook" in answer.inner_text()
        page.reload()
        page.wait_for_selector("#chat-settings-open-modal", timeout=30_000)
        assert token not in page.content()
    # Nor anywhere in the stored chats (only encrypted in notion_connections).
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM steps WHERE output LIKE :t OR input LIKE :t)"
                " + (SELECT count(*) FROM threads WHERE name LIKE :t OR metadata::text LIKE :t)"
            ),
            {"t": f"%{token}%"},
        ).scalar()
    assert stored == 0


def _say(page: Page, text: str, expect: str) -> None:
    """Send a message and wait for the reply containing `expect`."""
    ask(page, text)
    page.locator(".ai-message", has_text=expect).last.wait_for(timeout=60_000)
    wait_reply_done(page)


def test_a_shared_space_with_an_editor_a_reader_and_a_removal(
    server: str,
    browser: Browser,
    make_user: Callable[..., Any],
    tmp_path: Path,
) -> None:
    make_user("olivia", is_admin=True)
    make_user("erin")
    make_user("rita")
    pdf = _make_pdf(tmp_path / "zorblatt-manual.pdf")

    def open_as(name: str) -> Page:
        page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        pages.append(page)
        login(page, server, name, "password123")
        return page

    pages: list[Page] = []
    with screenshots_on_failure(pages, "e2e-spaces"):
        # The owner (an admin) creates the space and adds an editor and a reader.
        owner = open_as("olivia")
        _say(owner, '/spaces create "Reactor team"', "Created the shared space")
        _say(owner, '/spaces add "Reactor team" erin editor', "Added erin")
        _say(owner, '/spaces add "Reactor team" rita reader', "Added rita")
        _say(owner, "/spaces", "Reactor team")

        # The editor uploads a PDF into the space.
        editor = open_as("erin")
        editor.set_input_files("#upload-button-input", str(pdf))
        editor.wait_for_selector("text=zorblatt-manual.pdf", timeout=30_000)
        ask(editor, "/upload Reactor team")
        editor.wait_for_selector(
            ".ai-message >> text=/Indexed zorblatt-manual\\.pdf into Reactor team/",
            timeout=INDEXING_S * 1000,
        )
        wait_reply_done(editor)

        # The reader gets a cited answer from it, naming the space.
        reader = open_as("rita")
        ask(reader, QUESTION)
        answer = reader.locator(".ai-message", has_text="4217").last
        answer.wait_for(timeout=120_000)
        wait_reply_done(reader)
        answer.get_by_role("link", name="[1]").first.click()
        reader.wait_for_selector("text=/space Reactor team/", timeout=15_000)
        link = reader.get_by_role("link", name="Open the file").first
        file_url = server + str(link.get_attribute("href")).split("#")[0]
        assert "/kb/sources/" in file_url
        assert reader.request.get(file_url).status == 200
        reader.screenshot(path=str(ARTIFACTS / "e2e-spaces-reader.png"), full_page=True)

        # The reader may not add files there: one clear message, nothing indexed.
        reader.set_input_files("#upload-button-input", str(pdf))
        reader.wait_for_selector("text=zorblatt-manual.pdf", timeout=30_000)
        ask(reader, "/upload Reactor team")
        refusal = reader.locator(".ai-message", has_text="You are a reader of").last
        refusal.wait_for(timeout=60_000)
        wait_reply_done(reader)
        assert "only its editors and owners can add files" in refusal.inner_text()

        # After removal: no answer from the space, and the file is gone for them.
        _say(owner, '/spaces remove "Reactor team" rita', "Removed rita")
        replies = reader.locator(".ai-message")
        before = replies.count()
        ask(reader, QUESTION)
        # Wait for the new reply itself: the last message before it is the refusal.
        replies.nth(before).wait_for(timeout=120_000)
        wait_reply_done(reader)
        assert "don't know" in replies.last.inner_text()
        assert "4217" not in replies.last.inner_text()
        assert reader.request.get(file_url).status == 404
        reader.screenshot(path=str(ARTIFACTS / "e2e-spaces-removed.png"), full_page=True)


def _make_big_markdown(path: Path, sections: int = 1000) -> Path:
    """A long handbook: one ~900-character section per chunk (about `sections` chunks)."""
    filler = " ".join(f"procedure{i % 41} clause{i % 17} item{i}" for i in range(30))
    path.write_text(
        "\n\n".join(
            f"## Section {n}: rules of the quarry\n\nSection {n} says: {filler} (end of {n})."
            for n in range(sections)
        )
    )
    return path


def _job_of(engine: Engine, name: str) -> tuple[str, int]:
    """(status, chunks) of the newest job indexing `name`."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT status, coalesce((result->>'chunks')::int, 0) FROM jobs"
                " WHERE source_id = :n ORDER BY id DESC LIMIT 1"
            ),
            {"n": name},
        ).one()
    return str(row[0]), int(row[1])


def _embedded(line: str) -> int:
    """n of an "Embedding n/N chunks" progress line."""
    found = re.search(r"Embedding (\d+)/\d+ chunks", line)
    assert found is not None, line
    return int(found.group(1))


def test_a_large_upload_indexes_in_the_background_while_the_chat_answers(
    server: str,
    browser: Browser,
    make_user: Callable[..., Any],
    tmp_path: Path,
    engine: Engine,
) -> None:
    make_user("dana")
    pdf = _make_pdf(tmp_path / "zorblatt-manual.pdf")
    big = _make_big_markdown(tmp_path / "quarry-rules.md")
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    with screenshots_on_failure([page], "e2e-jobs"):
        login(page, server, "dana", "password123")
        # An earlier document, indexed first.
        page.set_input_files("#upload-button-input", str(pdf))
        page.wait_for_selector("text=zorblatt-manual.pdf", timeout=UI_WAIT_S * 1000)
        ask(page, "Here is the reactor manual.")
        page.wait_for_selector(
            ".ai-message >> text=/Indexed zorblatt-manual\\.pdf \\(\\d+ chunks\\)/",
            timeout=INDEXING_S * 1000,
        )
        wait_reply_done(page)

        # The large file: the upload returns at once, its step shows the embedding.
        page.set_input_files("#upload-button-input", str(big))
        page.wait_for_selector("text=quarry-rules.md", timeout=UI_WAIT_S * 1000)
        ask(page, "Here are the quarry rules.")
        page.wait_for_selector(
            ".ai-message >> text=/Indexing quarry-rules\\.md in the background/",
            timeout=UI_WAIT_S * 1000,
        )
        wait_reply_done(page)
        progress = page.locator("text=/Embedding \\d+\\/\\d+ chunks/").first
        progress.wait_for(timeout=INDEXING_S * 1000)

        # A question about the earlier document is answered while the big one indexes.
        ask(page, QUESTION)
        page.locator(".ai-message", has_text="4217").last.wait_for(timeout=UI_WAIT_S * 1000)
        wait_reply_done(page)
        status, _ = _job_of(engine, "quarry-rules.md")
        assert status in ("queued", "running"), "indexing ended before the answer came"
        page.screenshot(path=str(ARTIFACTS / "e2e-jobs-answer-while-indexing.png"), full_page=True)

        # A reload during indexing: the step is open, shows the stored progress and keeps
        # following the job (the number goes on rising).
        page.reload()
        page.wait_for_selector("#chat-settings-open-modal", timeout=UI_WAIT_S * 1000)
        assert _job_of(engine, "quarry-rules.md")[0] in ("queued", "running")
        shown = page.locator("text=/Embedding \\d+\\/\\d+ chunks/").first
        shown.wait_for(timeout=UI_WAIT_S * 1000)
        page.screenshot(path=str(ARTIFACTS / "e2e-jobs-reloaded.png"), full_page=True)
        first = _embedded(shown.inner_text())

        def moved_on() -> bool:
            found = re.search(r"Embedding (\d+)/\d+ chunks", page.inner_text("body"))
            # No progress line left: the step shows its final line (checked below).
            return found is None or int(found.group(1)) > first

        wait_until(moved_on, INDEXING_S, "the reloaded step to show further progress")

        def indexed() -> bool:
            return _job_of(engine, "quarry-rules.md")[0] == "done"

        wait_until(indexed, INDEXING_S * 10, "the large file to be indexed")
        chunks = _job_of(engine, "quarry-rules.md")[1]
        assert chunks >= 900
        page.locator(f"text=Indexed {chunks} chunks.").first.wait_for(timeout=UI_WAIT_S * 1000)
        page.screenshot(path=str(ARTIFACTS / "e2e-jobs-indexed.png"), full_page=True)
