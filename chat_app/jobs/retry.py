"""When a failed job is tried again: transient trouble yes, bad input never.

procrastinate asks the task's retry strategy after every failure. Ours retries
anything unexpected (a database restart, a dropped connection, a bug that may not
repeat) and the `KbError`s that name a passing condition (Notion unavailable or rate
limited, another sync still running), with exponential backoff, a bounded number of
times; any other `KbError` is the input's fault (a corrupt file, a revoked token) and
fails at once, its message kept on the job for the person who asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from procrastinate import BaseRetryStrategy, RetryDecision
from procrastinate.exceptions import JobAborted
from procrastinate.jobs import Job

from db.errors import DatabaseUnavailable, KbError
from ingest.notion.errors import NotionRateLimited, NotionSyncRunning, NotionUnavailable

__all__ = ["TRANSIENT_ERRORS", "JobRetry", "TransientJobError", "is_transient"]

#: KbErrors that say "not now" rather than "not this".
TRANSIENT_ERRORS: tuple[type[KbError], ...] = (
    DatabaseUnavailable,
    NotionRateLimited,
    NotionSyncRunning,
    NotionUnavailable,
)


class TransientJobError(Exception):
    """A job failed for a reason that may pass (its message is for people)."""


def is_transient(error: BaseException) -> bool:
    return not isinstance(error, KbError) or isinstance(error, TRANSIENT_ERRORS)


@dataclass(frozen=True)
class JobRetry(BaseRetryStrategy):
    """Up to `max_attempts` tries, waiting `first_wait` seconds, then twice as long each time."""

    max_attempts: int = 5
    first_wait: float = 10.0

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if isinstance(exception, JobAborted):
            # procrastinate only asks about aborts when the worker is shutting down:
            # the job goes straight back to the queue for another worker.
            return RetryDecision(retry_at=datetime.now(UTC))
        if not is_transient(exception) or job.attempts + 1 >= self.max_attempts:
            return None
        wait = timedelta(seconds=self.wait_before(job.attempts + 1))
        return RetryDecision(retry_at=datetime.now(UTC) + wait)

    def wait_before(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1 = the first)."""
        return self.first_wait * 2 ** (retry - 1)
