"""Incremental sync of one user's Notion workspace into `document_chunks`.

- A page whose `last_edited_time` equals the recorded one (and was indexed) costs
  no block request and no embedding; its recorded children are still walked.
- A new or edited page is fetched, converted to Markdown, split and handed to
  `index_source`, which replaces its chunks (unchanged chunks are not re-embedded).
- A recorded page not seen by a complete walk (trashed, archived, deleted,
  un-shared) is removed with `delete_source`.
- Each page is committed on its own, so a failed or interrupted run keeps what it
  did and the next run converges; a failing page is recorded as `failed` (retried
  next time) and does not stop the others: the run is then `partial`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from sqlalchemy.engine import Engine

from db import notion as repo
from db.errors import KbError
from db.scoped import user_scope
from ingest.indexing import delete_source, index_source
from ingest.notion.blocks import page_title, properties_lines, render_page
from ingest.notion.client import NotionClient
from ingest.notion.errors import NotionAuthError, NotionSyncRunning
from ingest.notion.report import SyncProgress, SyncReport
from ingest.notion.walk import Children, Walker, WalkOutcome, parent_container
from ingest.splitting import split_documents

__all__ = ["SOURCE_TYPE", "SyncOptions", "run_sync"]

log = logging.getLogger(__name__)

SOURCE_TYPE = "notion"
_MAX_ERRORS_KEPT = 50


@dataclass(frozen=True)
class SyncOptions:
    chunk_size: int = 1000
    chunk_overlap: int = 150
    batch_size: int = 64


@dataclass
class _Run:
    engine: Engine
    embeddings: Embeddings
    user_id: uuid.UUID  # who runs it (an editor of the space)
    space_id: uuid.UUID
    client: NotionClient
    options: SyncOptions
    report: SyncReport
    states: dict[str, repo.PageState]
    progress: Callable[[SyncProgress], None] | None
    walker: Walker | None = None
    parents: dict[str, str | None] = field(default_factory=dict)  # as recorded now

    def emit(self, phase: str, title: str | None = None, outcome: str | None = None) -> None:
        if self.progress is None:
            return
        done = self.report.pages_seen
        total = max(done, self.walker.discovered if self.walker else 0)
        self.progress(SyncProgress(phase, done, total, title, outcome))  # type: ignore[arg-type]

    def error(self, text: str) -> None:
        if len(self.report.errors) < _MAX_ERRORS_KEPT:
            self.report.errors.append(text)


def run_sync(
    *,
    engine: Engine,
    embeddings: Embeddings,
    user_id: uuid.UUID,
    space_id: uuid.UUID,
    client: NotionClient,
    options: SyncOptions | None = None,
    progress: Callable[[SyncProgress], None] | None = None,
) -> SyncReport:
    """One run of `space_id`'s connection by `user_id`, recorded in `notion_syncs`;
    auth and search failures are re-raised.

    Runs of one space are exclusive (a PostgreSQL advisory lock, so this holds across
    processes and app instances): a second one raises `NotionSyncRunning`.
    """
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as lock:
        if not repo.try_sync_lock(lock, space_id=space_id):
            raise NotionSyncRunning(
                "A Notion sync of this space is already running.",
                hint="Wait for it to finish (see `kb notion status`), then sync again.",
            )
        try:
            return _run_locked(
                engine=engine,
                embeddings=embeddings,
                user_id=user_id,
                space_id=space_id,
                client=client,
                options=options,
                progress=progress,
            )
        finally:
            repo.release_sync_lock(lock, space_id=space_id)


def _run_locked(
    *,
    engine: Engine,
    embeddings: Embeddings,
    user_id: uuid.UUID,
    space_id: uuid.UUID,
    client: NotionClient,
    options: SyncOptions | None,
    progress: Callable[[SyncProgress], None] | None,
) -> SyncReport:
    with user_scope(engine, user_id) as conn:
        repo.fail_running_syncs(conn, space_id=space_id, reason="interrupted (the process stopped)")
        sync_id, started_at = repo.start_sync(conn, space_id=space_id, started_by=user_id)
        states = repo.load_pages(conn, space_id=space_id)
    report = SyncReport(status="running", started_at=started_at, sync_id=sync_id)
    run = _Run(
        engine,
        embeddings,
        user_id,
        space_id,
        client,
        options or SyncOptions(),
        report,
        states,
        progress,
    )
    fatal: BaseException | None = None
    try:
        run.emit("enumerating")
        run.walker = Walker(client, lambda page, container: _visit(run, page, container))
        outcome = run.walker.run()
        for text in outcome.errors:
            run.error(text)
        run.emit("removing")
        _record_structure(run, outcome)
        _remove_unseen(run, outcome)
    except BaseException as error:  # recorded as failed, then re-raised
        fatal = error
        run.error(str(error) if isinstance(error, KbError) else f"{type(error).__name__}: {error}")
    if fatal is not None:
        report.status = "failed"
    elif report.pages_failed or report.errors:
        report.status = "partial"
    else:
        report.status = "success"
    report.requests = dict(client.stats.requests)
    report.retries = client.stats.retries
    report.rate_limited = client.stats.rate_limited
    _finish(run)
    run.emit("done")
    if fatal is not None:
        raise fatal
    return report


def _visit(run: _Run, page: dict[str, Any], container: str | None) -> Children:
    """Index one page if new or edited; return the children the walk should follow."""
    report, page_id = run.report, page["id"]
    stored = run.states.get(page_id)
    edited = page.get("last_edited_time")
    title = page_title(page)
    report.pages_seen += 1
    if (
        stored is not None
        and stored.kind == "page"
        and stored.status == "indexed"
        and stored.last_edited_time == edited
    ):
        report.pages_unchanged += 1
        run.parents[page_id] = stored.parent_id
        run.emit("pages", title, "unchanged")
        return _recorded_children(run, page_id)
    parent = container or parent_container(page)
    run.parents[page_id] = parent
    try:
        rendered = render_page(page_id, run.client.list_children)
        documents = _documents(page, title, rendered.markdown, row=_is_row(page))
        chunks = split_documents(
            documents,
            chunk_size=run.options.chunk_size,
            chunk_overlap=run.options.chunk_overlap,
            markdown=True,
        )
        stats = index_source(
            engine=run.engine,
            embeddings=run.embeddings,
            user_id=run.user_id,
            space_id=run.space_id,
            source_type=SOURCE_TYPE,
            source_id=page_id,
            documents=chunks,
            source_url=page.get("url"),
            batch_size=run.options.batch_size,
        )
        with user_scope(run.engine, run.user_id) as conn:
            repo.save_page(
                conn,
                space_id=run.space_id,
                page_id=page_id,
                title=title,
                url=page.get("url"),
                parent_id=parent,
                last_edited_time=edited,
                chunk_count=len(chunks),
                status="indexed",
            )
            repo.save_placeholders(
                conn,
                space_id=run.space_id,
                parent_id=page_id,
                kind="page",
                object_ids=(i for i, _ in rendered.child_pages),
            )
            repo.save_placeholders(
                conn,
                space_id=run.space_id,
                parent_id=page_id,
                kind="database",
                object_ids=(i for i, _ in rendered.child_databases),
            )
    except NotionAuthError:
        raise
    except Exception as error:
        log.warning(
            "Notion page %s (%s) failed: %s",
            page_id,
            title,
            error,
            exc_info=not isinstance(error, KbError),
        )
        report.pages_failed += 1
        run.error(f"{title} ({page_id}): {error}")
        with user_scope(run.engine, run.user_id) as conn:
            repo.save_page(
                conn,
                space_id=run.space_id,
                page_id=page_id,
                title=title,
                url=page.get("url"),
                parent_id=parent,
                chunk_count=stored.chunk_count if stored else 0,
                last_edited_time=stored.last_edited_time if stored else None,
                status="failed",
                error=str(error)[:2000],
            )
        run.emit("pages", title, "failed")
        return _recorded_children(run, page_id)
    report.chunks_written += stats.added + stats.updated
    is_new = stored is None or stored.last_edited_time is None
    if is_new:
        report.pages_new += 1
    else:
        report.pages_updated += 1
    run.emit("pages", title, "new" if is_new else "updated")
    return Children(
        tuple(i for i, _ in rendered.child_pages), tuple(i for i, _ in rendered.child_databases)
    )


def _is_row(page: dict[str, Any]) -> bool:
    return (page.get("parent") or {}).get("type") in ("data_source_id", "database_id")


def _documents(page: dict[str, Any], title: str, markdown: str, *, row: bool) -> list[Document]:
    # The title opens the text (every page is findable by it, even an empty one); a
    # database row's properties follow as "Name: value" lines.
    parts = [title]
    if row:
        parts.append("\n".join(properties_lines(page)))
    parts.append(markdown)
    text = "\n\n".join(p for p in parts if p.strip())
    metadata = {
        "title": title,
        "source_url": page.get("url"),
        "last_edited_time": page.get("last_edited_time"),
        "notion_page_id": page["id"],
        "source_type": SOURCE_TYPE,
        "source_id": page["id"],
    }
    return [Document(page_content=text, metadata=metadata)]


def _recorded_children(run: _Run, page_id: str) -> Children:
    pages = tuple(i for i, s in run.states.items() if s.parent_id == page_id and s.kind == "page")
    databases = tuple(
        i for i, s in run.states.items() if s.parent_id == page_id and s.kind == "database"
    )
    return Children(pages, databases)


def _record_structure(run: _Run, outcome: WalkOutcome) -> None:
    """Remember databases and where child pages live, for the next run's walk."""
    with user_scope(run.engine, run.user_id) as conn:
        for database_id, parent in outcome.databases.items():
            parent = outcome.parent_of.get(database_id, parent)
            stored = run.states.get(database_id)
            if (
                stored
                and stored.kind == "database"
                and stored.parent_id == parent
                and stored.status == "indexed"
            ):
                continue
            repo.save_page(
                conn,
                space_id=run.space_id,
                page_id=database_id,
                kind="database",
                title=outcome.database_titles.get(database_id),
                url=None,
                parent_id=parent,
                last_edited_time=None,
                chunk_count=0,
                status="indexed",
            )
        for page_id, parent in outcome.parent_of.items():
            if page_id in run.parents and run.parents[page_id] != parent:
                repo.set_parent(conn, space_id=run.space_id, page_id=page_id, parent_id=parent)


def _protected(run: _Run, outcome: WalkOutcome) -> set[str]:
    """Recorded pages below a container whose listing failed: unknown, so kept."""
    if not outcome.incomplete:
        return set()
    kept: set[str] = set()
    for page_id in run.states:
        seen: set[str] = set()
        node: str | None = page_id
        while node is not None and node not in seen:
            if node in outcome.incomplete:
                kept.add(page_id)
                break
            seen.add(node)
            state = run.states.get(node)
            node = state.parent_id if state else None
    return kept


def _remove_unseen(run: _Run, outcome: WalkOutcome) -> None:
    protected = _protected(run, outcome)
    gone = [
        (page_id, state)
        for page_id, state in run.states.items()
        if page_id not in protected
        and (
            (state.kind == "page" and page_id not in outcome.pages)
            or (state.kind == "database" and page_id not in outcome.databases)
        )
    ]
    for page_id, state in gone:
        if state.kind == "page":
            delete_source(
                engine=run.engine,
                user_id=run.user_id,
                space_id=run.space_id,
                source_id=page_id,
                source_type=SOURCE_TYPE,
            )
            if state.status != "pending":  # a placeholder never held content
                run.report.pages_removed += 1
                run.emit("removing", state.title, "removed")
        with user_scope(run.engine, run.user_id) as conn:
            repo.delete_pages(conn, space_id=run.space_id, page_ids=[page_id])


def _finish(run: _Run) -> None:
    report = run.report
    counts = {
        "pages_seen": report.pages_seen,
        "pages_new": report.pages_new,
        "pages_updated": report.pages_updated,
        "pages_unchanged": report.pages_unchanged,
        "pages_removed": report.pages_removed,
        "pages_failed": report.pages_failed,
        "chunks_written": report.chunks_written,
    }
    details = {
        "requests": report.requests,
        "retries": report.retries,
        "rate_limited": report.rate_limited,
        "retry_wait_seconds": round(sum(run.client.stats.retry_waits), 3),
        "errors": report.errors,
    }
    error = "\n".join(report.errors[:10]) or None
    try:
        with user_scope(run.engine, run.user_id) as conn:
            report.finished_at = repo.finish_sync(
                conn,
                space_id=run.space_id,
                sync_id=report.sync_id or 0,
                status=report.status,
                counts=counts,
                error=error,
                details=details,
            )
    except Exception:  # the database itself failed: keep the report truthful anyway
        log.exception("Could not record the end of Notion sync %s", report.sync_id)
        report.finished_at = datetime.now(UTC)
