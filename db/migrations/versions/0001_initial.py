"""Initial schema: users, Chainlit history, document chunks with vectors, sync state, logs.

Revision ID: 0001
Revises:
Create Date: 2026-11-24

The vector dimension comes from the embedding model: `db.schema.upgrade_to_head`
passes it as `config.attributes["embedding_dimension"]` (default 384).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR, UUID

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCOPED_ROLE = "kb_scoped"
USER_OWNED = (
    "document_chunks",
    "index_records",
    "notion_connections",
    "notion_pages",
    "notion_syncs",
    "usage_logs",
)


def _now() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


def _updated() -> sa.Column:
    return sa.Column(
        "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


def _user_fk(*, nullable: bool = False, primary_key: bool = False) -> sa.Column:
    return sa.Column(
        "user_id",
        UUID(as_uuid=True),
        sa.ForeignKey("users.id", ondelete="CASCADE"),
        nullable=nullable,
        primary_key=primary_key,
    )


def upgrade() -> None:
    dimension = int(context.config.attributes.get("embedding_dimension", 384))
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")

    # --- users (Chainlit's columns + our login fields) -------------------------------
    op.create_table(
        "users",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("identifier", sa.Text, nullable=False, unique=True),
        sa.Column("metadata", JSONB, nullable=False, server_default="{}"),
        sa.Column("createdAt", sa.Text),
        sa.Column("email", sa.Text),
        sa.Column("password_hash", sa.Text),
        sa.Column("display_name", sa.Text),
        sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("is_admin", sa.Boolean, nullable=False, server_default=sa.false()),
        _now(),
        _updated(),
        sa.CheckConstraint("identifier = lower(identifier)", name="users_identifier_lowercase"),
    )
    op.create_index("users_email_lower_key", "users", [sa.text("lower(email)")], unique=True)

    # --- Chainlit data layer ---------------------------------------------------------
    op.create_table(
        "threads",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("createdAt", sa.Text),
        sa.Column("name", sa.Text),
        sa.Column("userId", UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="CASCADE")),
        sa.Column("userIdentifier", sa.Text),
        sa.Column("tags", ARRAY(sa.Text)),
        sa.Column("metadata", JSONB),
    )
    op.create_index("threads_user_created_idx", "threads", ["userId", "createdAt"])
    op.create_table(
        "steps",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column(
            "threadId",
            UUID(as_uuid=True),
            sa.ForeignKey("threads.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("parentId", UUID(as_uuid=True)),
        sa.Column("streaming", sa.Boolean, nullable=False),
        sa.Column("waitForAnswer", sa.Boolean),
        sa.Column("isError", sa.Boolean),
        sa.Column("metadata", JSONB),
        sa.Column("tags", ARRAY(sa.Text)),
        sa.Column("input", sa.Text),
        sa.Column("output", sa.Text),
        sa.Column("createdAt", sa.Text),
        sa.Column("command", sa.Text),
        sa.Column("start", sa.Text),
        sa.Column("end", sa.Text),
        sa.Column("generation", JSONB),
        sa.Column("showInput", sa.Text),
        sa.Column("language", sa.Text),
        sa.Column("indent", sa.Integer),
        sa.Column("defaultOpen", sa.Boolean),
        sa.Column("autoCollapse", sa.Boolean),
        sa.Column("modes", JSONB),
        sa.Column("icon", sa.Text),
    )
    op.create_index("steps_thread_idx", "steps", ["threadId", "createdAt"])
    op.create_table(
        "elements",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("threadId", UUID(as_uuid=True), sa.ForeignKey("threads.id", ondelete="CASCADE")),
        sa.Column("type", sa.Text),
        sa.Column("url", sa.Text),
        sa.Column("chainlitKey", sa.Text),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("display", sa.Text),
        sa.Column("objectKey", sa.Text),
        sa.Column("size", sa.Text),
        sa.Column("page", sa.Integer),
        sa.Column("language", sa.Text),
        sa.Column("forId", UUID(as_uuid=True)),
        sa.Column("mime", sa.Text),
        sa.Column("props", JSONB),
        sa.Column("autoPlay", sa.Boolean),
        sa.Column("playerConfig", JSONB),
    )
    op.create_index("elements_thread_idx", "elements", ["threadId"])
    op.create_index("elements_object_key_idx", "elements", ["objectKey"])
    op.create_table(
        "feedbacks",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("forId", UUID(as_uuid=True), nullable=False),
        sa.Column(
            "threadId",
            UUID(as_uuid=True),
            sa.ForeignKey("threads.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("value", sa.Integer, nullable=False),
        sa.Column("comment", sa.Text),
    )

    # --- document chunks with vectors and full-text ----------------------------------
    op.create_table(
        "document_chunks",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("chunk_id", sa.Text, nullable=False, unique=True),
        _user_fk(),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("metadata", JSONB, nullable=False, server_default="{}"),
        sa.Column("source_type", sa.String(32), nullable=False),
        sa.Column("source_id", sa.Text, nullable=False),
        sa.Column("source_url", sa.Text),
        sa.Column("chunk_index", sa.Integer, nullable=False, server_default="0"),
        sa.Column("embedding", Vector(dimension), nullable=False),
        sa.Column(
            "text_tsv",
            TSVECTOR,
            sa.Computed(
                "to_tsvector('english'::regconfig, coalesce(metadata->>'title', '') || ' ' || text)",
                persisted=True,
            ),
        ),
        _now(),
        _updated(),
    )
    op.create_index("document_chunks_user_idx", "document_chunks", ["user_id"])
    op.create_index(
        "document_chunks_user_source_idx",
        "document_chunks",
        ["user_id", "source_type", "source_id", "chunk_index"],
    )
    op.create_index("document_chunks_source_type_idx", "document_chunks", ["source_type"])
    op.create_index("document_chunks_created_idx", "document_chunks", ["created_at"])
    op.create_index(
        "document_chunks_embedding_hnsw",
        "document_chunks",
        ["embedding"],
        postgresql_using="hnsw",
        postgresql_with={"m": 16, "ef_construction": 64},
        postgresql_ops={"embedding": "vector_cosine_ops"},
    )
    op.create_index(
        "document_chunks_text_tsv_gin", "document_chunks", ["text_tsv"], postgresql_using="gin"
    )

    # --- LangChain indexing-API records ------------------------------------------------
    op.create_table(
        "index_records",
        sa.Column("namespace", sa.Text, primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        _user_fk(),
        sa.Column("group_id", sa.Text),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("index_records_group_idx", "index_records", ["namespace", "group_id"])
    op.create_index("index_records_updated_idx", "index_records", ["namespace", "updated_at"])
    op.create_index("index_records_user_idx", "index_records", ["user_id"])

    # --- Notion ------------------------------------------------------------------------
    op.create_table(
        "notion_connections",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "user_id",
            UUID(as_uuid=True),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
        sa.Column("token_encrypted", sa.LargeBinary, nullable=False),
        sa.Column("workspace_name", sa.Text),
        sa.Column("bot_id", sa.Text),
        _now(),
        _updated(),
    )
    op.create_table(
        "notion_pages",
        _user_fk(primary_key=True),
        sa.Column("page_id", sa.Text, primary_key=True),
        # 'page' (indexed content) or 'database' (a container whose rows are pages)
        sa.Column("kind", sa.Text, nullable=False, server_default="page"),
        sa.Column("title", sa.Text),
        sa.Column("url", sa.Text),
        sa.Column("parent_id", sa.Text),
        sa.Column("last_edited_time", sa.Text),
        sa.Column("chunk_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("status", sa.Text, nullable=False, server_default="indexed"),
        sa.Column("error", sa.Text),
        sa.Column(
            "synced_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )
    op.create_table(
        "notion_syncs",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        _user_fk(),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column(
            "started_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        *[
            sa.Column(name, sa.Integer, nullable=False, server_default="0")
            for name in (
                "pages_seen",
                "pages_new",
                "pages_updated",
                "pages_unchanged",
                "pages_removed",
                "pages_failed",
                "chunks_written",
            )
        ],
        sa.Column("error", sa.Text),
        sa.Column("details", JSONB, nullable=False, server_default="{}"),
        sa.CheckConstraint(
            "status IN ('running', 'success', 'partial', 'failed', 'legacy')",
            name="notion_syncs_status_check",
        ),
    )
    op.create_index("notion_syncs_user_started_idx", "notion_syncs", ["user_id", "started_at"])

    # --- usage logs and stored files ---------------------------------------------------
    op.create_table(
        "usage_logs",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        _user_fk(),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("mode", sa.Text),
        sa.Column("k", sa.Integer),
        sa.Column("retrieval_ms", sa.Float),
        sa.Column("generation_ms", sa.Float),
        sa.Column("sources_count", sa.Integer),
        sa.Column("model", sa.Text),
        sa.Column("tokens_used", sa.Integer),
        sa.Column("details", JSONB, nullable=False, server_default="{}"),
        _now(),
    )
    op.create_index("usage_logs_user_created_idx", "usage_logs", ["user_id", "created_at"])
    op.create_table(
        "stored_files",
        sa.Column("object_key", sa.Text, primary_key=True),
        _user_fk(nullable=True),
        sa.Column("mime", sa.Text),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        _now(),
    )

    _row_level_security()


def _row_level_security() -> None:
    """Policies keyed by the per-transaction setting `app.user_id`.

    They bind the role `kb_scoped`, which `db.scoped.user_scope` switches to with
    SET LOCAL ROLE: superusers and table owners bypass row-level security, so the
    scope must run as a role that does not. Creating the role needs CREATEROLE; on a
    managed server without it, the policies still exist and `kb doctor` says that
    the SQL filters are the only guard.
    """
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{SCOPED_ROLE}') THEN
                BEGIN
                    CREATE ROLE {SCOPED_ROLE} NOLOGIN;
                EXCEPTION WHEN insufficient_privilege THEN
                    RAISE NOTICE 'cannot create role {SCOPED_ROLE}: row-level security not enforced';
                END;
            END IF;
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{SCOPED_ROLE}') THEN
                BEGIN
                    EXECUTE format('GRANT {SCOPED_ROLE} TO %I', current_user);
                EXCEPTION WHEN OTHERS THEN
                    NULL;
                END;
                EXECUTE 'GRANT USAGE ON SCHEMA ' || quote_ident(current_schema()) || ' TO {SCOPED_ROLE}';
                EXECUTE 'GRANT SELECT ON users TO {SCOPED_ROLE}';
                EXECUTE 'GRANT SELECT, INSERT, UPDATE, DELETE ON {", ".join(USER_OWNED)} TO {SCOPED_ROLE}';
                EXECUTE 'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA '
                    || quote_ident(current_schema()) || ' TO {SCOPED_ROLE}';
            END IF;
        END
        $$;
        """
    )
    for table in USER_OWNED:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"""
            CREATE POLICY {table}_user_isolation ON {table}
            USING (user_id = NULLIF(current_setting('app.user_id', true), '')::uuid)
            WITH CHECK (user_id = NULLIF(current_setting('app.user_id', true), '')::uuid)
            """
        )
    # Under row-level security PostgreSQL uses only leakproof operators as index
    # conditions, so full-text `@@` could not use the GIN index and every keyword
    # search would read all of the user's chunks. ts_match_vq only compares its two
    # arguments (no side effects, no data-dependent errors). Needs superuser; without
    # it keyword search stays correct, only slower.
    op.execute(
        """
        DO $$
        BEGIN
            ALTER FUNCTION pg_catalog.ts_match_vq(tsvector, tsquery) LEAKPROOF;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'ts_match_vq is not leakproof here: keyword search reads more rows';
        END
        $$;
        """
    )


def downgrade() -> None:
    for table in (
        "stored_files",
        "usage_logs",
        "notion_syncs",
        "notion_pages",
        "notion_connections",
        "index_records",
        "document_chunks",
        "feedbacks",
        "elements",
        "steps",
        "threads",
        "users",
    ):
        op.drop_table(table)
