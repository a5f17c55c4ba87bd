"""`kb stats` as an operator runs it, on a database with people, files, a question, a
queued job and a Notion sync in it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from chat_app.services import Services
from ingest.files import ingest_file
from tests.app_fixtures import app_services, personal_access
from tests.cli import run_kb

__all__ = ["app_services"]

REACTOR = "# Zorblatt reactor\n\nThe Zorblatt reactor runs at 451 kelvin on tuesdays.\n"


async def test_stats_counts_people_spaces_jobs_syncs_and_slow_questions(
    app_services: Callable[..., Services],
    make_user: Callable[..., Any],
    engine: Engine,
    db_url: str,
    tmp_path: Path,
) -> None:
    services = app_services()
    alice = make_user("alice")
    make_user("bob")
    space = personal_access(services, alice.id)
    for name in ("reactor.md", "turbine.md"):
        path = tmp_path / name
        path.write_text(REACTOR.replace("Zorblatt", name.split(".")[0]))
        result = ingest_file(
            path,
            engine=services.engine,
            embeddings=services.embeddings,
            user_id=alice.id,
            space_id=space.id,
            options=services.ingest_options(),
        )
        assert result.status == "indexed"
    answer = await services.answer_chain().ainvoke("reactor kelvin?", user_id=alice.id)
    assert answer.sources
    services.job_queue().enqueue_file(
        user_id=alice.id, space_id=space.id, source_id="later.md", data=b"# Later", origin="cli"
    )
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO notion_syncs (space_id, started_by, status, finished_at, pages_seen)"
                " VALUES (:space, :user, 'partial', now(), 7)"
            ),
            {"space": space.id, "user": alice.id},
        )

    shown = run_kb("stats", "--json", cwd=tmp_path, database_url=db_url)
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)

    assert report["users"] == {"total": 2, "active": 2, "admins": 0}
    mine = next(s for s in report["spaces"] if s["id"] == str(space.id))
    assert (mine["members"], mine["sources"], mine["chunks"]) == (1, 2, 2)
    assert mine["name"] == "Personal (alice)"  # personal spaces are told apart by owner
    assert report["database_bytes"] > 0
    assert "document_chunks" in {r["table"] for r in report["relations"]} | {
        r["name"] for r in report["relations"]
    }
    assert {"kind": "index_file", "status": "queued", "jobs": 1} in report["jobs"]
    assert [q["status"] for q in report["queue"]] == ["todo"]
    assert [(s["space"], s["status"], s["pages_seen"]) for s in report["notion_syncs"]] == [
        ("Personal (alice)", "partial", 7)
    ]
    [slow] = report["slowest_questions"]
    assert slow["login"] == "alice" and slow["mode"] == "hybrid" and slow["sources"] >= 1

    table = run_kb("stats", cwd=tmp_path, database_url=db_url)
    assert table.returncode == 0, table.stderr
    for heading in ("Spaces", "Largest tables and indexes", "Jobs", "Notion syncs", "Slowest"):
        assert heading in table.stdout
