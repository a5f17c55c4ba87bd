"""The security headers in a real browser: Chainlit's UI works under kb's Content
Security Policy (login, upload, cited answer, source panel, feedback, resumed chat
with its attachment) and the browser reports no violation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser

from tests.browser.harness import (
    ARTIFACTS,
    INDEXING_S,
    ask,
    login,
    screenshots_on_failure,
    wait_reply_done,
)
from tests.browser.test_e2e import QUESTION, _make_pdf

pytestmark = pytest.mark.browser

# Records what the browser refused because of the policy (console text varies).
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


def test_the_ui_runs_under_the_content_security_policy(
    server: str, browser: Browser, make_user: Callable[..., Any], tmp_path: Path
) -> None:
    make_user("alice")
    pdf = _make_pdf(tmp_path / "zorblatt-manual.pdf")
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text))
    with screenshots_on_failure([page], "csp"):
        response = page.goto(server + "/")
        assert response is not None
        assert "script-src 'self' 'sha256-" in response.headers["content-security-policy"]
        login(page, server, "alice", "password123")

        page.set_input_files("#upload-button-input", str(pdf))
        page.wait_for_selector("text=zorblatt-manual.pdf", timeout=30_000)
        ask(page, "Here is the reactor manual.")
        page.wait_for_selector(
            ".ai-message >> text=/Indexed zorblatt-manual\\.pdf/", timeout=INDEXING_S * 1000
        )
        wait_reply_done(page)

        ask(page, QUESTION)
        answer = page.locator(".ai-message", has_text="4217").last
        answer.wait_for(timeout=120_000)
        wait_reply_done(page)
        thread_id = page.url.rstrip("/").rsplit("/", 1)[-1]
        answer.locator(".positive-feedback-off").click()
        page.click("#submit-feedback")
        answer.locator(".positive-feedback-on").wait_for(timeout=15_000)
        answer.get_by_role("link", name="[1]").first.click()
        page.locator("#side-view-title").filter(has_text="[1]").wait_for(timeout=15_000)
        panel = page.locator("#side-view-content")
        assert "zorblatt-manual.pdf" in panel.inner_text()
        href = panel.get_by_role("link", name="Open the file at page").first.get_attribute("href")
        assert href and href.startswith("/kb/sources/")
        pdf_url = href.split("#")[0]

        page.goto(server + "/")
        page.wait_for_selector("#chat-settings-open-modal", timeout=30_000)
        files: list[dict[str, str]] = []
        page.on(
            "response", lambda r: files.append(r.all_headers()) if "/kb/files/" in r.url else None
        )
        with page.expect_response(
            lambda r: "/kb/files/" in r.url and r.status == 200, timeout=60_000
        ):
            page.locator(f"#thread-history a[href*='{thread_id}']").first.click()
        page.locator(".ai-message", has_text="4217").first.wait_for(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "csp-resumed.png"), full_page=True)

        # Attachments keep the file route's own headers: a PDF opens in the browser's
        # viewer (which a page policy would block); anything else stays sandboxed.
        opened = page.request.get(server + pdf_url)
        assert opened.status == 200 and opened.headers["content-type"] == "application/pdf"
        assert "content-security-policy" not in opened.headers
        for headers in files:
            pdf_file = headers["content-type"] == "application/pdf"
            assert headers.get("content-security-policy") == (None if pdf_file else "sandbox")
        assert all(h["x-content-type-options"] == "nosniff" for h in [*files, opened.headers])

        violations = page.evaluate("window.__csp")
        refused = [line for line in console if "Content Security Policy" in line]
        assert violations == [] and refused == [], (violations, refused)
