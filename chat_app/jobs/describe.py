"""The words people see for a job: one line per state, written by the worker into
`jobs.message` and shown as they are by the chat step, `/jobs` and `kb jobs`."""

from __future__ import annotations

from datetime import UTC, datetime

from db.jobs import JobRow
from ingest.files import FileResult
from ingest.notion.report import SyncProgress, SyncReport

__all__ = [
    "KIND_LABELS",
    "file_result_line",
    "job_line",
    "notion_progress_line",
    "notion_report_line",
    "when",
]

KIND_LABELS = {
    "index_file": "index file",
    "notion_sync": "Notion sync",
    "delete_source": "remove source",
}


def file_result_line(result: FileResult) -> str:
    """What happened to an indexed file, as the upload's step ends."""
    if result.status == "error":
        return f"Failed: {result.error}"
    if result.status == "unchanged":
        return f"Unchanged since the last upload, skipped ({result.chunks} chunks indexed)."
    if result.status == "updated":
        return (
            f"Updated: indexed {result.chunks} chunks ({result.added} new, "
            f"{result.deleted} removed, {result.skipped} unchanged)."
        )
    return f"Indexed {result.chunks} chunks."


def notion_progress_line(event: SyncProgress) -> str:
    if event.phase == "enumerating":
        return f"Finding pages shared with the integration… ({event.total} so far)"
    if event.phase == "removing":
        return "Removing pages that were deleted or archived in Notion…"
    if event.phase == "done":
        return f"Done: {event.done} pages."
    title = f": {event.title}" if event.title else ""
    outcome = f" ({event.outcome})" if event.outcome else ""
    return f"Page {event.done}/{event.total}{title}{outcome}"


def notion_report_line(report: SyncReport) -> str:
    return (
        f"Notion sync {report.status}: {report.pages_seen} pages checked, "
        f"{report.pages_new} new, {report.pages_updated} updated, "
        f"{report.pages_removed} removed, {report.pages_unchanged} unchanged, "
        f"{report.pages_failed} errors ({report.seconds:.1f} s)."
    )


def job_line(row: JobRow) -> str:
    """The job's current line (the worker's words, or the state's)."""
    if row.message:
        return row.message
    if row.status == "queued":
        return "Queued…"
    if row.status == "failed":
        return f"Failed: {row.error or 'see the worker log'}"
    if row.status == "cancelled":
        return "Cancelled."
    return row.phase.capitalize() + "…"


def when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
