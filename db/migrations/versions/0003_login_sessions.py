"""Login sessions that can end, and login-failure counters shared by every web process.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

`login_sessions`: one row per login; the signed cookie names its row, and every
request checks that the row is neither revoked nor expired and that its user is
still enabled (logout revokes one row; disabling a user, changing a password or
deleting the user ends all of them). `login_throttle`: fixed-window counters of
failed logins (per login name and per client address), kept in PostgreSQL so
several `kb serve` processes on one database share them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_sessions",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column(
            "user_id",
            UUID(as_uuid=True),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("provider", sa.Text, nullable=False, server_default="credentials"),
        sa.Column("client_address", sa.Text),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
    )
    op.create_index("login_sessions_user_idx", "login_sessions", ["user_id"])
    op.create_index("login_sessions_expires_idx", "login_sessions", ["expires_at"])
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("hits", sa.Integer, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("login_throttle_expires_idx", "login_throttle", ["expires_at"])


def downgrade() -> None:
    op.drop_table("login_throttle")
    op.drop_table("login_sessions")
