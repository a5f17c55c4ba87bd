"""A running job's progress, written to its `jobs` row for people to watch.

The worker calls `JobProgress` from the indexing code's progress callbacks (many
per second while embedding). Rows are written at most every `interval` seconds, at
once when the phase changes, and always for the last batch; each call also checks
whether the job should stop (cancelled by someone, or the worker shutting down) and
raises `JobStopping` so the work ends inside its transaction, which then rolls back.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from sqlalchemy.engine import Engine

from chat_app.jobs.describe import notion_progress_line
from db.jobs import set_progress
from ingest.notion.report import SyncProgress

__all__ = ["JobProgress", "JobStopping"]

_EMBEDDING = re.compile(r"^embedding .*: (\d+)/(\d+) new chunks$")
_SPLIT = re.compile(r"^indexing .*: (\d+) chunks$")


class JobStopping(Exception):
    """Raised inside the work when the job has been asked to stop."""


class JobProgress:
    def __init__(
        self,
        engine: Engine,
        job_id: int,
        *,
        should_stop: Callable[[], bool],
        interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.job_id = job_id
        self.should_stop = should_stop
        self.interval = interval
        self.clock = clock
        self._phase: str | None = None
        self._written = float("-inf")

    def __call__(
        self, phase: str, message: str, done: int | None = None, total: int | None = None
    ) -> None:
        if self.should_stop():
            raise JobStopping(f"job {self.job_id} asked to stop")
        now = self.clock()
        last_batch = done is not None and done == total
        if phase == self._phase and not last_batch and now - self._written < self.interval:
            return
        with self.engine.begin() as connection:
            set_progress(
                connection,
                job_id=self.job_id,
                phase=phase,
                message=message,
                done=done,
                total=total,
            )
        self._phase, self._written = phase, now

    def from_ingest(self, text: str) -> None:
        """`ingest.files` progress lines: reading (OCR pages too), then embedding n/N."""
        if match := _EMBEDDING.match(text):
            done, total = int(match.group(1)), int(match.group(2))
            self("embedding", f"Embedding {done}/{total} chunks…", done, total)
        elif match := _SPLIT.match(text):
            total = int(match.group(1))
            self("embedding", f"Embedding 0/{total} chunks…", 0, total)
        elif text.startswith("reading "):
            self("reading", "Reading…")
        else:
            self("reading", text[:1].upper() + text[1:] + "…")

    def from_notion(self, event: SyncProgress) -> None:
        self("syncing", notion_progress_line(event), event.done, event.total)
