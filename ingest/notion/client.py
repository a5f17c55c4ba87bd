"""A paced, retrying wrapper over `notion_client.Client`.

notion-client 3.x speaks API version 2025-09-03 by default (databases hold data
sources; rows come from `data_sources.query`); we keep that default. Its own
retry loop is turned off (`retry=False`): it retries 5xx only for GET, ignores
non-integer Retry-After values, never retries timeouts or connection errors, and
its waits are invisible. Here every wait is decided, capped and counted, so tests
and benchmarks can see what happened.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from notion_client import Client
from notion_client.errors import (
    APIResponseError,
    HTTPResponseError,
    RequestTimeoutError,
)

from ingest.notion.errors import (
    NotionAccessDenied,
    NotionApiError,
    NotionAuthError,
    NotionRateLimited,
    NotionUnavailable,
)

__all__ = ["ClientStats", "NotionClient", "TokenBucket"]

log = logging.getLogger(__name__)

_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504, 529})


class TokenBucket:
    """At most `rate` acquisitions per second on average, bursts up to `burst`."""

    def __init__(
        self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate)
        self._tokens = self.capacity
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take one token now; returns how long to wait before using it (0 if available)."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            return -self._tokens / self.rate if self._tokens < 0 else 0.0

    def acquire(self) -> float:
        """Take one token, sleeping until it is due; returns the seconds slept."""
        wait = self.reserve()
        if wait > 0:
            time.sleep(wait)
        return wait


@dataclass
class ClientStats:
    """What the client did: requests by kind, retries, and every retry wait."""

    requests: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    rate_limited: int = 0  # 429 answers, retried or not (an operator's metric)
    retry_waits: list[float] = field(default_factory=list)
    paced_seconds: float = 0.0


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds from a Retry-After header (integer, decimal or HTTP-date), or None."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class NotionClient:
    """The calls a sync needs, each paced, retried and mapped to `NotionError`s.

    The token lives only inside the underlying client; it is never logged, and
    `repr()` does not show it.
    """

    def __init__(
        self,
        token: str,
        *,
        base_url: str | None = None,
        requests_per_second: float = 3.0,
        burst: float | None = None,
        max_retries: int = 5,
        backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 30.0,
        max_retry_after_seconds: float = 60.0,
        timeout_seconds: float = 30.0,
        page_size: int = 100,
    ) -> None:
        options: dict[str, Any] = {
            "auth": token,
            "timeout_ms": int(timeout_seconds * 1000),
            "retry": False,
            "logger": logging.getLogger("ingest.notion.sdk"),
            "log_level": logging.ERROR,  # we log failures ourselves, once, without bodies
        }
        if base_url:
            options["base_url"] = base_url.rstrip("/")
        self._sdk = Client(**options)
        self.base_url = self._sdk.options.base_url
        self.notion_version: str = self._sdk.options.notion_version
        self.bucket = TokenBucket(requests_per_second, burst)
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.max_retry_after_seconds = max_retry_after_seconds
        self.page_size = page_size
        self.stats = ClientStats()

    def __repr__(self) -> str:
        return f"NotionClient(base_url={self.base_url!r}, version={self.notion_version!r})"

    def close(self) -> None:
        self._sdk.close()

    def __enter__(self) -> NotionClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the calls -------------------------------------------------------------------

    def me(self) -> dict[str, Any]:
        """The integration's bot user (a cheap call that validates the token)."""
        return self._call("users", "user", "me", self._sdk.users.me)

    def retrieve_page(self, page_id: str) -> dict[str, Any]:
        return self._call("pages", "page", page_id, self._sdk.pages.retrieve, page_id)

    def retrieve_database(self, database_id: str) -> dict[str, Any]:
        return self._call(
            "databases", "database", database_id, self._sdk.databases.retrieve, database_id
        )

    def search(self) -> Iterator[dict[str, Any]]:
        """Every page and data source shared with the integration (search omits trash)."""
        yield from self._paginate("search", "workspace", "search", self._sdk.search)

    def query_data_source(self, data_source_id: str) -> Iterator[dict[str, Any]]:
        """Every row (a page) of one data source."""
        yield from self._paginate(
            "data_sources.query",
            "database",
            data_source_id,
            self._sdk.data_sources.query,
            data_source_id,
        )

    def list_children(self, block_id: str) -> Iterator[dict[str, Any]]:
        """The direct children of a block or page, all pages of results."""
        yield from self._paginate(
            "blocks.children",
            "page or block",
            block_id,
            self._sdk.blocks.children.list,
            block_id,
        )

    # --- machinery -------------------------------------------------------------------

    def _paginate(
        self, kind: str, what: str, object_id: str, method: Callable[..., Any], *args: Any
    ) -> Iterator[dict[str, Any]]:
        cursor: str | None = None
        while True:
            kwargs: dict[str, Any] = {"page_size": self.page_size}
            if cursor:
                kwargs["start_cursor"] = cursor
            response = self._call(kind, what, object_id, method, *args, **kwargs)
            yield from response.get("results", [])
            cursor = response.get("next_cursor")
            if not response.get("has_more") or not cursor:
                return

    def _call(
        self,
        kind: str,
        what: str,
        object_id: str,
        method: Callable[..., Any],
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        attempt = 0
        while True:
            self.stats.paced_seconds += self.bucket.acquire()
            self.stats.requests[kind] += 1
            try:
                return method(*args, **kwargs)
            except (HTTPResponseError, RequestTimeoutError, httpx.TransportError) as error:
                if isinstance(error, HTTPResponseError) and error.status == 429:
                    self.stats.rate_limited += 1
                wait = self._retry_wait(error, attempt)
                if wait is None:
                    raise self._translate(error, what, object_id) from None
                log.info(
                    "Notion %s %s: %s; retry %d in %.2f s",
                    kind,
                    object_id,
                    _describe(error),
                    attempt + 1,
                    wait,
                )
                self.stats.retries += 1
                self.stats.retry_waits.append(wait)
                time.sleep(wait)
                attempt += 1

    def _retry_wait(self, error: Exception, attempt: int) -> float | None:
        """Seconds to wait before retrying, or None when the error is final."""
        if attempt >= self.max_retries:
            return None
        if isinstance(error, HTTPResponseError):
            if error.status not in _RETRYABLE_STATUS:
                return None
            after = _retry_after(error.headers)
            if after is not None:
                return min(after, self.max_retry_after_seconds)
        # Capped exponential backoff with jitter in [base/2, base): retries spread out.
        base = min(self.max_backoff_seconds, self.backoff_seconds * 2**attempt)
        return base * (0.5 + random.random() / 2)

    def _translate(self, error: Exception, what: str, object_id: str) -> Exception:
        if isinstance(error, HTTPResponseError):
            status = error.status
            if status == 401:
                return NotionAuthError()
            if status in (403, 404):
                return NotionAccessDenied(what, object_id, status=status)
            if status == 429:
                return NotionRateLimited(
                    f"Notion kept rate-limiting requests (429) after {self.max_retries} retries.",
                    hint="Lower KB_NOTION_REQUESTS_PER_SECOND or wait a minute, then sync again.",
                )
            if status in _RETRYABLE_STATUS:
                return NotionUnavailable(
                    f"Notion kept failing with HTTP {status} ({_describe(error)}) "
                    f"after {self.max_retries} retries.",
                    hint="Notion may be having trouble; sync again later (it resumes).",
                )
            return NotionApiError(
                f"Notion refused a request for {what} {object_id}: {_describe(error)}.",
                hint="This is likely a bug in kb or an API change; please report it.",
            )
        return NotionUnavailable(
            f"Could not reach Notion at {self.base_url} ({_describe(error)}) "
            f"after {self.max_retries} retries.",
            hint="Check the network (or KB_NOTION_BASE_URL) and sync again.",
        )


def _describe(error: Exception) -> str:
    if isinstance(error, APIResponseError):
        return f"{error.status} {getattr(error.code, 'value', error.code)}: {error}"
    if isinstance(error, HTTPResponseError):
        return f"HTTP {error.status}"
    if isinstance(error, RequestTimeoutError):
        return "request timed out"
    return type(error).__name__
