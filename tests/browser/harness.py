"""Helpers for the real-browser tests: waits, login, asking, screenshots on failure.

The waits are the ones measured in /work/shared/STACK-NOTES.md (Chainlit section):
wait for something `on_chat_start` sends before uploading, and after a message wait
for the thread URL and for the stop button to go away (the input is rebuilt).
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Page

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SERVER_START_S = 90
INDEXING_S = 180
# Generous: the first login waits for the embedding model on a loaded machine.
UI_WAIT_S = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@contextmanager
def screenshots_on_failure(pages: list[Page], name: str) -> Iterator[None]:
    try:
        yield
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        for i, page in enumerate(pages):
            # A dead page must not hide the real failure.
            with contextlib.suppress(Exception):
                page.screenshot(path=str(ARTIFACTS / f"{name}-{i}.png"), full_page=True)
        raise


def login(page: Page, base: str, login: str, password: str) -> None:
    page.goto(base + "/")
    page.fill("#email", login)
    page.fill("#password", password)
    page.click("button[type=submit]")
    # Sent by on_chat_start: the session exists, uploads and messages are accepted.
    page.wait_for_selector("#chat-settings-open-modal", timeout=UI_WAIT_S * 1000)


def wait_reply_done(page: Page) -> None:
    page.wait_for_url(re.compile(r".*/thread/[0-9a-f-]+"), timeout=60_000)
    page.wait_for_selector("#stop-button", state="detached", timeout=INDEXING_S * 1000)


def ask(page: Page, question: str) -> None:
    page.fill("#chat-input", question)
    page.click("#chat-submit")
