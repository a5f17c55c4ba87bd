"""Walk everything shared with the integration: search, then recursion.

Search alone is not enough (it is title-indexed with a delay and not exhaustive),
so the walk also follows the child pages and child databases of every page, and
queries every data source for its rows (database rows are pages). Which children a
page has is decided by the caller's `visit`: from freshly fetched blocks for a new
or edited page, from the recorded state for an unchanged one (so an unchanged
workspace costs no block requests at all).

Trashed or archived objects are skipped: they end up "not seen", which is how the
sync notices that they are gone.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from db.errors import KbError
from ingest.notion.blocks import page_title
from ingest.notion.client import NotionClient
from ingest.notion.errors import NotionAccessDenied, NotionAuthError

__all__ = ["Children", "WalkOutcome", "Walker", "is_live", "parent_container"]

log = logging.getLogger(__name__)

Page = dict[str, Any]


@dataclass(frozen=True)
class Children:
    """What a page contains that the walk should visit."""

    pages: tuple[str, ...] = ()
    databases: tuple[str, ...] = ()


@dataclass
class WalkOutcome:
    """What one walk saw."""

    pages: dict[str, Page] = field(default_factory=dict)
    databases: dict[str, str | None] = field(default_factory=dict)  # id -> parent page
    database_titles: dict[str, str] = field(default_factory=dict)
    parent_of: dict[str, str] = field(default_factory=dict)  # found inside this container
    gone: set[str] = field(default_factory=set)  # confirmed trashed, deleted or un-shared
    incomplete: set[str] = field(default_factory=set)  # containers whose listing failed
    errors: list[str] = field(default_factory=list)


def is_live(obj: dict[str, Any]) -> bool:
    """Not in the trash (2025-09-03 sends both flags; 2026-03-11 has no `archived`)."""
    return not (obj.get("in_trash") or obj.get("archived") or obj.get("is_archived"))


def parent_container(page: Page) -> str | None:
    """The page or database a page belongs to, from its `parent` field."""
    parent = page.get("parent") or {}
    kind = parent.get("type")
    if kind == "data_source_id":
        return str(parent.get("database_id") or parent.get("data_source_id"))
    if kind in ("page_id", "database_id", "block_id"):
        return str(parent[kind])
    return None


Visit = Callable[[Page, str | None], Children]


class Walker:
    """Breadth-first walk; `visit(page, container_id)` is called once per live page."""

    def __init__(self, client: NotionClient, visit: Visit) -> None:
        self.client = client
        self.visit = visit
        self.outcome = WalkOutcome()
        self._queue: deque[tuple[str, Any, str | None]] = deque()
        self._queued: set[str] = set()
        self._data_sources: set[str] = set()
        self._pages_queued = 0

    @property
    def discovered(self) -> int:
        """Pages visited plus pages waiting: the current best total for progress."""
        return len(self.outcome.pages) + self._pages_queued

    def run(self) -> WalkOutcome:
        """Walk; search failures and auth errors propagate (nothing can be concluded)."""
        for result in self.client.search():
            if not is_live(result):
                continue
            if result.get("object") == "page":
                self._push("page", result, None)
            elif result.get("object") == "data_source":
                database_id = (result.get("parent") or {}).get("database_id")
                if database_id:
                    parent = (result.get("database_parent") or {}).get("page_id")
                    self.outcome.databases.setdefault(database_id, parent)
                    self.outcome.database_titles.setdefault(database_id, page_title(result))
                self._push("data_source", result["id"], database_id)
        while self._queue:
            kind, item, container = self._queue.popleft()
            if kind in ("page", "page_id"):
                self._pages_queued -= 1
            try:
                if kind == "page":
                    self._page(item, container)
                elif kind == "page_id":
                    self._page_by_id(item, container)
                elif kind == "database":
                    self._database(item, container)
                else:
                    self._data_source(item, container)
            except NotionAuthError:
                raise
            except KbError as error:
                key = item["id"] if isinstance(item, dict) else item
                log.warning("Notion walk: %s %s failed: %s", kind, key, error)
                self.outcome.incomplete.add(
                    container if kind == "data_source" and container else key
                )
                self.outcome.errors.append(f"{kind} {key}: {error}")
        return self.outcome

    def _push(self, kind: str, item: Any, container: str | None) -> None:
        key = item["id"] if isinstance(item, dict) else item
        if key in self._queued:
            return
        self._queued.add(key)
        self._queue.append((kind, item, container))
        if kind in ("page", "page_id"):
            self._pages_queued += 1

    def _page(self, page: Page, container: str | None) -> None:
        page_id = page["id"]
        if page_id in self.outcome.pages:
            return
        self.outcome.pages[page_id] = page
        children = self.visit(page, container)
        for child in children.pages:
            self.outcome.parent_of[child] = page_id
            if child not in self.outcome.pages:
                self._push("page_id", child, page_id)
        for database_id in children.databases:
            self.outcome.parent_of[database_id] = page_id
            self._push("database", database_id, page_id)

    def _page_by_id(self, page_id: str, container: str | None) -> None:
        if page_id in self.outcome.pages:
            return
        try:
            page = self.client.retrieve_page(page_id)
        except NotionAccessDenied:
            self.outcome.gone.add(page_id)
            return
        if not is_live(page):
            self.outcome.gone.add(page_id)
            return
        self._page(page, container)

    def _database(self, database_id: str, container: str | None) -> None:
        try:
            database = self.client.retrieve_database(database_id)
        except NotionAccessDenied:
            self.outcome.gone.add(database_id)
            return
        if not is_live(database):
            self.outcome.gone.add(database_id)
            return
        self.outcome.databases[database_id] = container
        self.outcome.database_titles[database_id] = page_title(database)
        for source in database.get("data_sources") or []:
            self._push("data_source", source["id"], database_id)

    def _data_source(self, data_source_id: str, database_id: str | None) -> None:
        if data_source_id in self._data_sources:
            return
        self._data_sources.add(data_source_id)
        container = database_id or data_source_id
        for row in self.client.query_data_source(data_source_id):
            if row.get("object") == "page" and is_live(row):
                self._push_row(row, container)

    def _push_row(self, row: Page, container: str) -> None:
        self.outcome.parent_of.setdefault(row["id"], container)
        if row["id"] in self.outcome.pages:
            return
        if row["id"] in self._queued:
            # Already queued from search; the row's copy is as fresh, keep the first.
            return
        self._push("page", row, container)
