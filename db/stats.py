"""What an operator asks of the database: counts, sizes, backlog, recent syncs, slow
questions, ingestion rate. Read by `kb stats` and (backlog, rates, syncs) by the
metrics endpoint: these figures are the deployment's, the same from every process.

Every query here reads across spaces and users: run them as the database owner (the
CLI's engine), never inside a user scope.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

__all__ = [
    "JOBS_TABLE",
    "IngestRate",
    "NotionOutcomes",
    "RelationSize",
    "SlowQuestion",
    "SpaceStats",
    "SyncRun",
    "UserCounts",
    "database_size",
    "ingest_rate",
    "job_counts",
    "notion_outcomes",
    "queue_counts",
    "recent_syncs",
    "relation_sizes",
    "slowest_questions",
    "space_stats",
    "user_counts",
]

#: procrastinate's queue table (issue 12); absent before the jobs migration.
JOBS_TABLE = "procrastinate_jobs"


@dataclass(frozen=True)
class UserCounts:
    total: int
    active: int
    admins: int


@dataclass(frozen=True)
class SpaceStats:
    id: uuid.UUID
    name: str
    kind: str  # personal | shared
    members: int
    sources: int
    chunks: int


@dataclass(frozen=True)
class RelationSize:
    name: str
    kind: str  # table | index
    table: str  # the table an index belongs to (itself for a table)
    bytes: int


@dataclass(frozen=True)
class SyncRun:
    space: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    pages_seen: int
    pages_failed: int
    chunks_written: int
    error: str | None


@dataclass(frozen=True)
class SlowQuestion:
    login: str
    mode: str | None
    retrieval_ms: float
    generation_ms: float
    sources: int | None
    asked_at: datetime

    @property
    def total_ms(self) -> float:
        return self.retrieval_ms + self.generation_ms


_USERS = sa.text(
    "SELECT count(*) AS total, count(*) FILTER (WHERE is_active) AS active,"
    " count(*) FILTER (WHERE is_admin) AS admins FROM users"
)
# Sources are what indexing records group chunks by: one per file or Notion page.
# Personal spaces are all called "Personal": their owner's login tells them apart.
_SPACES = sa.text(
    """
    SELECT s.id, coalesce(s.name || ' (' || u.identifier || ')', s.name) AS name, s.kind,
           (SELECT count(*) FROM space_members m WHERE m.space_id = s.id) AS members,
           (SELECT count(DISTINCT (c.source_type, c.source_id)) FROM document_chunks c
             WHERE c.space_id = s.id) AS sources,
           (SELECT count(*) FROM document_chunks c WHERE c.space_id = s.id) AS chunks
    FROM spaces s LEFT JOIN users u ON u.id = s.personal_of
    ORDER BY chunks DESC, s.kind DESC, s.name, u.identifier
    """
)
# Every table of the current schema and its indexes (the HNSW and GIN ones matter most).
_SIZES = sa.text(
    """
    SELECT c.relname AS name,
           CASE c.relkind WHEN 'i' THEN 'index' ELSE 'table' END AS kind,
           coalesce(t.relname, c.relname) AS "table",
           CASE c.relkind WHEN 'i' THEN pg_relation_size(c.oid)
                ELSE pg_table_size(c.oid) END AS bytes
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_index i ON i.indexrelid = c.oid
    LEFT JOIN pg_class t ON t.oid = i.indrelid
    WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'i', 'm')
    ORDER BY bytes DESC, name
    """
)
_SYNCS = sa.text(
    """
    SELECT coalesce(s.name || ' (' || u.identifier || ')', s.name) AS space, r.status,
           r.started_at, r.finished_at, r.pages_seen, r.pages_failed, r.chunks_written, r.error
    FROM notion_syncs r JOIN spaces s ON s.id = r.space_id
    LEFT JOIN users u ON u.id = s.personal_of
    ORDER BY r.started_at DESC, r.id DESC
    LIMIT :limit
    """
)
_SLOWEST = sa.text(
    """
    SELECT u.identifier AS login, l.mode, coalesce(l.retrieval_ms, 0) AS retrieval_ms,
           coalesce(l.generation_ms, 0) AS generation_ms, l.sources_count AS sources,
           l.created_at AS asked_at
    FROM usage_logs l JOIN users u ON u.id = l.user_id
    WHERE l.action = 'ask' AND l.created_at >= now() - make_interval(hours => :hours)
    ORDER BY coalesce(l.retrieval_ms, 0) + coalesce(l.generation_ms, 0) DESC, l.id DESC
    LIMIT :limit
    """
)
_JOBS_PRESENT = sa.text("SELECT to_regclass(:name) IS NOT NULL")
# procrastinate's own view of its queue; finished jobs are history, not backlog.
_QUEUE = sa.text(
    """
    SELECT queue_name, status::text AS status, count(*) AS jobs
    FROM procrastinate_jobs
    WHERE status::text IN ('todo', 'doing')
    GROUP BY queue_name, status
    ORDER BY queue_name, status
    """
)
# kb's view: every job by kind and status (done and failed ones until retention ends).
_JOBS = sa.text(
    """
    SELECT kind, status, count(*) AS jobs FROM jobs GROUP BY kind, status ORDER BY kind, status
    """
)
# Files indexed in the window: chunks written and the seconds their jobs ran.
_INGEST = sa.text(
    """
    SELECT count(*) AS files,
           coalesce(sum((result->>'added')::bigint), 0) AS chunks,
           coalesce(sum(extract(epoch FROM finished_at - started_at)), 0)::float8 AS seconds
    FROM jobs
    WHERE kind = 'index_file' AND status = 'done' AND started_at IS NOT NULL
      AND finished_at >= now() - make_interval(secs => :seconds)
      AND (result->>'added')::bigint > 0
    """
)
_NOTION = sa.text(
    """
    SELECT status, count(*) AS runs,
           coalesce(sum((details->>'rate_limited')::bigint), 0) AS rate_limited
    FROM notion_syncs
    WHERE started_at >= now() - make_interval(secs => :seconds) AND status <> 'running'
    GROUP BY status
    """
)


@dataclass(frozen=True)
class IngestRate:
    """Files indexed in a window, the chunks they wrote and the seconds their jobs ran."""

    files: int
    chunks: int
    seconds: float

    @property
    def chunks_per_second(self) -> float | None:
        return self.chunks / self.seconds if self.seconds > 0 else None


@dataclass(frozen=True)
class NotionOutcomes:
    """Notion syncs that ended in a window, by status, and Notion's 429 answers."""

    runs: dict[str, int]
    rate_limited: int


def user_counts(connection: Connection) -> UserCounts:
    row = connection.execute(_USERS).one()
    return UserCounts(total=row.total, active=row.active, admins=row.admins)


def space_stats(connection: Connection) -> list[SpaceStats]:
    """Every space with its members, sources and chunks, the biggest first."""
    return [SpaceStats(**row._mapping) for row in connection.execute(_SPACES)]


def database_size(connection: Connection) -> int:
    size = connection.execute(sa.text("SELECT pg_database_size(current_database())")).scalar()
    return int(size or 0)


def relation_sizes(connection: Connection) -> list[RelationSize]:
    """Tables and indexes of the schema with their size on disk, the biggest first."""
    return [RelationSize(**row._mapping) for row in connection.execute(_SIZES)]


def recent_syncs(connection: Connection, *, limit: int = 10) -> list[SyncRun]:
    return [SyncRun(**row._mapping) for row in connection.execute(_SYNCS, {"limit": limit})]


def slowest_questions(
    connection: Connection, *, hours: int = 24, limit: int = 10
) -> list[SlowQuestion]:
    """The slowest questions (retrieval + generation) asked in the last `hours`."""
    rows = connection.execute(_SLOWEST, {"hours": hours, "limit": limit})
    return [SlowQuestion(**row._mapping) for row in rows]


def queue_counts(connection: Connection) -> dict[tuple[str, str], int] | None:
    """procrastinate's waiting and running jobs by (queue, status); None when there is
    no job queue."""
    if not connection.execute(_JOBS_PRESENT, {"name": JOBS_TABLE}).scalar():
        return None
    return {(row.queue_name, row.status): int(row.jobs) for row in connection.execute(_QUEUE)}


def job_counts(connection: Connection) -> dict[tuple[str, str], int]:
    """kb's jobs by (kind, status): queued, running, retrying, done, failed, cancelled."""
    return {(row.kind, row.status): int(row.jobs) for row in connection.execute(_JOBS)}


def ingest_rate(connection: Connection, *, seconds: float = 3600) -> IngestRate:
    """What indexing jobs that finished in the last `seconds` wrote, and how fast."""
    row = connection.execute(_INGEST, {"seconds": seconds}).one()
    return IngestRate(files=int(row.files), chunks=int(row.chunks), seconds=float(row.seconds))


def notion_outcomes(connection: Connection, *, seconds: float = 86400) -> NotionOutcomes:
    """Notion syncs that ended in the last `seconds`, by status, and their 429 count."""
    rows = connection.execute(_NOTION, {"seconds": seconds}).all()
    return NotionOutcomes(
        runs={row.status: int(row.runs) for row in rows},
        rate_limited=sum(int(row.rate_limited) for row in rows),
    )
