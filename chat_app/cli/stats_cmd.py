"""`kb stats`: an operator's view of the deployment in one screen: people, spaces and
what they hold, the database and its biggest tables and indexes, the job backlog, the
last Notion syncs and the slowest questions of the last day."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

import typer
from rich.table import Table

from chat_app.cli.context import cli_services
from chat_app.cli.output import console
from db import stats


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


def _json_default(value: object) -> Any:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def register(app: typer.Typer) -> None:
    @app.command("stats")
    def stats_command(
        hours: int = typer.Option(24, "--hours", help="Window of the slowest questions."),
        top: int = typer.Option(10, "--top", "-n", help="Rows per list (sizes, syncs, questions)."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead."),
    ) -> None:
        """Users, spaces (members, sources, chunks), database and index sizes, job backlog,
        the last Notion syncs and the slowest questions (read as the database owner)."""
        with cli_services() as services, services.engine.connect() as conn:
            report = {
                "users": asdict(stats.user_counts(conn)),
                "spaces": [asdict(s) for s in stats.space_stats(conn)],
                "database_bytes": stats.database_size(conn),
                "relations": [asdict(r) for r in stats.relation_sizes(conn)[:top]],
                "jobs": [
                    {"kind": kind, "status": status, "jobs": count}
                    for (kind, status), count in stats.job_counts(conn).items()
                ],
                "queue": [
                    {"queue": queue, "status": status, "jobs": count}
                    for (queue, status), count in (stats.queue_counts(conn) or {}).items()
                ],
                "ingest_last_hour": asdict(stats.ingest_rate(conn, seconds=3600)),
                "notion_syncs": [asdict(s) for s in stats.recent_syncs(conn, limit=top)],
                "slowest_questions": [
                    {**asdict(q), "total_ms": q.total_ms}
                    for q in stats.slowest_questions(conn, hours=hours, limit=top)
                ],
            }
        if as_json:
            print(json.dumps(report, default=_json_default, indent=2))
            return
        _print(report, hours)


def _print(report: dict[str, Any], hours: int) -> None:
    users = report["users"]
    console.print(
        f"[bold]Users[/bold] {users['total']} ({users['active']} active, "
        f"{users['admins']} admins)   [bold]Database[/bold] {_size(report['database_bytes'])}"
    )
    spaces = Table("space", "kind", "members", "sources", "chunks", title="Spaces")
    for s in report["spaces"]:
        spaces.add_row(
            s["name"], s["kind"], str(s["members"]), f"{s['sources']:,}", f"{s['chunks']:,}"
        )
    console.print(spaces)
    sizes = Table("relation", "kind", "table", "size", title="Largest tables and indexes")
    for r in report["relations"]:
        sizes.add_row(r["name"], r["kind"], r["table"], _size(r["bytes"]))
    console.print(sizes)
    jobs = Table("kind", "status", "jobs", title="Jobs")
    for j in report["jobs"]:
        jobs.add_row(j["kind"], j["status"], str(j["jobs"]))
    console.print(jobs)
    backlog = sum(q["jobs"] for q in report["queue"] if q["status"] == "todo")
    rate = report["ingest_last_hour"]
    per_second = rate["chunks"] / rate["seconds"] if rate["seconds"] else 0.0
    console.print(
        f"Queue backlog: {backlog} waiting. Last hour: {rate['files']} files indexed, "
        f"{rate['chunks']:,} chunks, {per_second:.1f} chunks/s of job time."
    )
    syncs = Table("space", "status", "started", "finished", "pages", "failed", title="Notion syncs")
    for s in report["notion_syncs"]:
        syncs.add_row(
            s["space"],
            s["status"],
            _when(s["started_at"]),
            _when(s["finished_at"]),
            str(s["pages_seen"]),
            str(s["pages_failed"]),
        )
    console.print(syncs if report["notion_syncs"] else "No Notion syncs yet.")
    slow = Table(
        "who",
        "mode",
        "total ms",
        "retrieval ms",
        "generation ms",
        "sources",
        "asked",
        title="Slowest questions",
    )
    for q in report["slowest_questions"]:
        slow.add_row(
            q["login"],
            q["mode"] or "-",
            f"{q['total_ms']:,.0f}",
            f"{q['retrieval_ms']:,.0f}",
            f"{q['generation_ms']:,.0f}",
            "-" if q["sources"] is None else str(q["sources"]),
            _when(q["asked_at"]),
        )
    console.print(
        slow if report["slowest_questions"] else f"No questions in the last {hours} hours."
    )
