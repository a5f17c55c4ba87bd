"""Background jobs: procrastinate's queue, and kb's view of each job.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

- procrastinate's own schema (tables `procrastinate_jobs`, `_events`, `_workers`,
  `_periodic_defers`, their functions and triggers), by replaying the SQL scripts the
  package ships up to `03.04.00_50` (procrastinate 3.10); see `db/job_schema.py` for
  how later procrastinate versions are brought in;
- `jobs`: what a person sees of a job, keyed by procrastinate's job id: what it is
  (indexing a file, a Notion sync, removing a source), for which space and on whose
  behalf, its progress (queued, reading, embedding n/N, indexed) and its outcome or
  the reason it failed, and the chat step that shows it;
- `job_files`: the bytes of a file waiting to be indexed (an upload, a file named on
  `kb ingest`), so a worker on any machine can read it and a restart loses nothing;
- row-level security: members of a space read its jobs; file bytes are for workers only.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

from db.job_schema import apply_procrastinate_migrations, drop_procrastinate_schema

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCOPED_ROLE = "kb_scoped"
PROCRASTINATE_UPTO = "03.04.00_50_post_add_retry_failed_job_procedure"


def _now(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def upgrade() -> None:
    apply_procrastinate_migrations(op.get_bind(), upto=PROCRASTINATE_UPTO)
    op.create_table(
        "jobs",
        sa.Column(
            "id",
            sa.BigInteger,
            sa.ForeignKey("procrastinate_jobs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column(
            "space_id", UUID(as_uuid=True), sa.ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False
        ),
        # Who asked for it; NULL for scheduled runs (and once the account is deleted).
        sa.Column("requested_by", UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("origin", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("source_type", sa.Text),
        sa.Column("source_id", sa.Text),
        sa.Column("status", sa.Text, nullable=False, server_default="queued"),
        sa.Column("phase", sa.Text, nullable=False, server_default="queued"),
        sa.Column("done", sa.Integer),
        sa.Column("total", sa.Integer),
        sa.Column("message", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("result", JSONB, nullable=False, server_default="{}"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        # The worker running it (or that ran it last): host:pid/queue.
        sa.Column("worker", sa.Text),
        sa.Column("thread_id", sa.Text),
        sa.Column("step_id", sa.Text),
        # The chat step shows the final state (set by the web process that wrote it).
        sa.Column("step_final", sa.Boolean, nullable=False, server_default=sa.false()),
        _now("created_at"),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        _now("updated_at"),
        sa.CheckConstraint(
            "kind IN ('index_file', 'notion_sync', 'delete_source')", name="jobs_kind_check"
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'retrying', 'done', 'failed', 'cancelled')",
            name="jobs_status_check",
        ),
    )
    op.create_index("jobs_space_created_idx", "jobs", ["space_id", sa.text("created_at DESC")])
    op.create_index("jobs_requested_by_created_idx", "jobs", ["requested_by", sa.text("created_at DESC")])
    op.create_index(
        "jobs_thread_idx", "jobs", ["thread_id"], postgresql_where=sa.text("thread_id IS NOT NULL")
    )
    op.create_index(
        "jobs_unfinished_idx",
        "jobs",
        ["kind", "space_id"],
        postgresql_where=sa.text("status IN ('queued', 'running', 'retrying')"),
    )
    op.create_table(
        "job_files",
        sa.Column(
            "job_id", sa.BigInteger, sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("filename", sa.Text, nullable=False),
        sa.Column("mime", sa.Text),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        _now("created_at"),
    )
    op.execute(
        f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{SCOPED_ROLE}') THEN
                EXECUTE 'GRANT SELECT ON jobs TO {SCOPED_ROLE}';
            END IF;
        END
        $$;
        """
    )
    op.execute("ALTER TABLE jobs ENABLE ROW LEVEL SECURITY")
    op.execute(
        """
        CREATE POLICY jobs_members_read ON jobs FOR SELECT
        USING (space_id IN (SELECT kb_member_spaces('reader')))
        """
    )
    # No policy: under the scoped role nobody reads queued file bytes; workers and the
    # enqueueing code run as the owner (who bypasses row-level security).
    op.execute("ALTER TABLE job_files ENABLE ROW LEVEL SECURITY")


def downgrade() -> None:
    op.drop_table("job_files")
    op.drop_table("jobs")
    drop_procrastinate_schema(op.get_bind())
