"""Results of a Notion sync: the progress events and the final report."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

__all__ = ["SyncProgress", "SyncReport", "SyncStatus"]

SyncStatus = Literal["running", "success", "partial", "failed"]


@dataclass(frozen=True)
class SyncProgress:
    """One progress event: sent when a phase starts and after each page.

    `total` grows while the walk discovers child pages and database rows, so a
    progress bar should update its total on every event.
    """

    phase: Literal["enumerating", "pages", "removing", "done"]
    done: int
    total: int
    title: str | None = None
    outcome: Literal["new", "updated", "unchanged", "failed", "removed"] | None = None


@dataclass
class SyncReport:
    """What one run did; `str(report)` is a one-line summary for people."""

    status: SyncStatus
    started_at: datetime
    finished_at: datetime | None = None
    sync_id: int | None = None
    pages_seen: int = 0
    pages_new: int = 0
    pages_updated: int = 0
    pages_unchanged: int = 0
    pages_removed: int = 0
    pages_failed: int = 0
    chunks_written: int = 0
    errors: list[str] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    rate_limited: int = 0  # 429 answers from Notion during the run

    @property
    def seconds(self) -> float:
        end = self.finished_at or self.started_at
        return (end - self.started_at).total_seconds()

    def __str__(self) -> str:
        text = (
            f"Notion sync {self.status}: {self.pages_seen} pages seen, {self.pages_new} new, "
            f"{self.pages_updated} updated, {self.pages_unchanged} unchanged, "
            f"{self.pages_removed} removed, {self.pages_failed} failed "
            f"({sum(self.requests.values())} requests, {self.seconds:.1f} s)"
        )
        if self.errors:
            more = f" (+{len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
            text += f"; first error: {self.errors[0]}{more}"
        return text
