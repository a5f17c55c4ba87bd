"""Read positions: where each person's own latest writes end in the primary's WAL.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08

With streaming read replicas (`KB_DATABASE_REPLICA_URLS`), a person's reads go to a
replica only once it has replayed past this position, so they always see their own
uploads and messages (see `db.read_positions`). One row per person, upserted after
their writes; read on the primary only. Nothing else depends on it.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # pg_lsn compares and orders WAL positions natively (GREATEST works on it).
    op.execute(
        """
        CREATE TABLE read_positions (
            user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
            lsn pg_lsn NOT NULL,
            noted_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.drop_table("read_positions")
