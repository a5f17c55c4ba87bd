"""Spaces: everything indexed belongs to a space (a person's own, or a shared one).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30

- `spaces` and `space_members` (role reader < editor < owner); every user gets a
  personal space they own, existing users included;
- chunks, indexing records, Notion connections, pages and sync runs move from
  `user_id` to `space_id` (of the owner's personal space: nothing is lost); chunks
  keep who added them in `added_by`, Notion runs who started them in `started_by`;
- `source_files` keeps the bytes of indexed files per space (the file a citation opens);
- row-level security on every space-owned table admits only the spaces where the
  scoped user (`app.user_id`) is a member; writes need editor or owner. (Disabled
  accounts are kept out by the application: their sessions end and searches skip them;
  an administrator's import still writes a disabled user's personal space.)
  Membership is read through a SECURITY DEFINER function, so the policies see it
  even though `space_members` is itself protected.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCOPED_ROLE = "kb_scoped"
# Tables whose rows belong to a space, and their old per-user policy names.
SPACE_OWNED = (
    "document_chunks",
    "index_records",
    "notion_connections",
    "notion_pages",
    "notion_syncs",
    "source_files",
)
WAS_USER_OWNED = SPACE_OWNED[:-1]


def _space_fk(*, nullable: bool = False) -> sa.Column:
    return sa.Column(
        "space_id",
        UUID(as_uuid=True),
        sa.ForeignKey("spaces.id", ondelete="CASCADE"),
        nullable=nullable,
    )


def _user_ref(name: str) -> sa.Column:
    # Who did something; kept (as NULL) when that person's account is deleted.
    return sa.Column(name, UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="SET NULL"))


def upgrade() -> None:
    _spaces_and_members()
    _personal_spaces_for_existing_users()
    _move_rows_into_personal_spaces()
    _source_files()
    _policies()


def _spaces_and_members() -> None:
    op.create_table(
        "spaces",
        sa.Column("id", UUID(as_uuid=True), primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        # The owner of a personal space; NULL for shared spaces.
        sa.Column(
            "personal_of",
            UUID(as_uuid=True),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            unique=True,
        ),
        _user_ref("created_by"),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("kind IN ('personal', 'shared')", name="spaces_kind_check"),
        sa.CheckConstraint(
            "(kind = 'personal') = (personal_of IS NOT NULL)", name="spaces_personal_owner_check"
        ),
        sa.CheckConstraint("btrim(name) <> ''", name="spaces_name_not_blank"),
    )
    # Shared spaces are named uniquely (case-insensitively); personal ones by their owner.
    op.create_index(
        "spaces_shared_name_key",
        "spaces",
        [sa.text("lower(name)")],
        unique=True,
        postgresql_where=sa.text("kind = 'shared'"),
    )
    op.create_table(
        "space_members",
        sa.Column(
            "space_id",
            UUID(as_uuid=True),
            sa.ForeignKey("spaces.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "user_id",
            UUID(as_uuid=True),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("role", sa.Text, nullable=False),
        _user_ref("added_by"),
        sa.Column("added_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("role IN ('reader', 'editor', 'owner')", name="space_members_role_check"),
    )
    op.create_index("space_members_user_idx", "space_members", ["user_id"])


def _personal_spaces_for_existing_users() -> None:
    op.execute(
        """
        INSERT INTO spaces (name, kind, personal_of, created_by)
        SELECT 'Personal', 'personal', id, id FROM users
        """
    )
    op.execute(
        """
        INSERT INTO space_members (space_id, user_id, role, added_by)
        SELECT id, personal_of, 'owner', personal_of FROM spaces WHERE kind = 'personal'
        """
    )


def _fill_space_from_user(table: str, user_column: str = "user_id") -> None:
    op.execute(
        sa.text(
            f"UPDATE {table} AS t SET space_id = s.id FROM spaces AS s"  # noqa: S608 (constants)
            f" WHERE s.personal_of = t.{user_column}"
        )
    )
    op.alter_column(table, "space_id", nullable=False)


def _move_rows_into_personal_spaces() -> None:
    for table in WAS_USER_OWNED:
        op.execute(f"DROP POLICY IF EXISTS {table}_user_isolation ON {table}")

    # document_chunks: space_id + added_by (the user who indexed it)
    op.add_column("document_chunks", _space_fk(nullable=True))
    _fill_space_from_user("document_chunks")
    op.drop_constraint("document_chunks_user_id_fkey", "document_chunks", type_="foreignkey")
    op.alter_column("document_chunks", "user_id", new_column_name="added_by", nullable=True)
    op.create_foreign_key(
        "document_chunks_added_by_fkey",
        "document_chunks",
        "users",
        ["added_by"],
        ["id"],
        ondelete="SET NULL",
    )
    op.drop_index("document_chunks_user_idx", "document_chunks")
    op.drop_index("document_chunks_user_source_idx", "document_chunks")
    op.create_index("document_chunks_space_idx", "document_chunks", ["space_id"])
    op.create_index(
        "document_chunks_space_source_idx",
        "document_chunks",
        ["space_id", "source_type", "source_id", "chunk_index"],
    )
    op.create_index("document_chunks_added_by_idx", "document_chunks", ["added_by"])

    # index_records: one namespace per space
    op.add_column("index_records", _space_fk(nullable=True))
    _fill_space_from_user("index_records")
    op.execute(
        "UPDATE index_records SET namespace = space_id::text || '/documents'"
        " WHERE namespace = user_id::text || '/documents'"
    )
    op.drop_index("index_records_user_idx", "index_records")
    op.drop_column("index_records", "user_id")
    op.create_index("index_records_space_idx", "index_records", ["space_id"])

    # Notion: the connection, its pages and its runs belong to a space
    op.add_column("notion_connections", _space_fk(nullable=True))
    op.add_column("notion_connections", _user_ref("connected_by"))
    op.execute("UPDATE notion_connections SET connected_by = user_id")
    _fill_space_from_user("notion_connections")
    op.drop_column("notion_connections", "user_id")
    op.create_unique_constraint(
        "notion_connections_space_key", "notion_connections", ["space_id"]
    )

    op.add_column("notion_pages", _space_fk(nullable=True))
    _fill_space_from_user("notion_pages")
    op.drop_constraint("notion_pages_pkey", "notion_pages", type_="primary")
    op.drop_column("notion_pages", "user_id")
    op.create_primary_key("notion_pages_pkey", "notion_pages", ["space_id", "page_id"])

    op.add_column("notion_syncs", _space_fk(nullable=True))
    op.add_column("notion_syncs", _user_ref("started_by"))
    op.execute("UPDATE notion_syncs SET started_by = user_id")
    _fill_space_from_user("notion_syncs")
    op.drop_index("notion_syncs_user_started_idx", "notion_syncs")
    op.drop_column("notion_syncs", "user_id")
    op.create_index("notion_syncs_space_started_idx", "notion_syncs", ["space_id", "started_at"])


def _source_files() -> None:
    op.create_table(
        "source_files",
        sa.Column("id", UUID(as_uuid=True), primary_key=True, server_default=sa.text("gen_random_uuid()")),
        _space_fk(),
        sa.Column("source_id", sa.Text, nullable=False),
        sa.Column("filename", sa.Text, nullable=False),
        sa.Column("mime", sa.Text),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        _user_ref("added_by"),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.UniqueConstraint("space_id", "source_id", name="source_files_space_source_key"),
    )


def _policies() -> None:
    # The scoped user's spaces with at least a role; an admin manages every space.
    op.execute(
        """
        CREATE OR REPLACE FUNCTION kb_current_user() RETURNS uuid
        LANGUAGE sql STABLE
        AS $$ SELECT NULLIF(current_setting('app.user_id', true), '')::uuid $$
        """
    )
    op.execute(
        """
        CREATE OR REPLACE FUNCTION kb_member_spaces(min_role text) RETURNS SETOF uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT ROWS 10
        AS $$
            SELECT m.space_id
            FROM space_members AS m
            WHERE m.user_id = kb_current_user()
              AND array_position(ARRAY['reader', 'editor', 'owner'], m.role)
                  >= array_position(ARRAY['reader', 'editor', 'owner'], min_role)
        $$
        """
    )
    op.execute(
        """
        CREATE OR REPLACE FUNCTION kb_is_admin() RETURNS boolean
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT
        AS $$
            SELECT coalesce(
                (SELECT is_admin AND is_active FROM users WHERE id = kb_current_user()), false
            )
        $$
        """
    )
    op.execute(
        f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{SCOPED_ROLE}') THEN
                EXECUTE 'GRANT SELECT, INSERT, UPDATE, DELETE ON spaces, space_members,
                         source_files TO {SCOPED_ROLE}';
            END IF;
        END
        $$;
        """
    )
    for table in SPACE_OWNED:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"""
            CREATE POLICY {table}_members_read ON {table} FOR SELECT
            USING (space_id IN (SELECT kb_member_spaces('reader')))
            """
        )
        op.execute(
            f"""
            CREATE POLICY {table}_editors_write ON {table} FOR ALL
            USING (space_id IN (SELECT kb_member_spaces('editor')))
            WITH CHECK (space_id IN (SELECT kb_member_spaces('editor')))
            """
        )
    for table, column in (("spaces", "id"), ("space_members", "space_id")):
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"""
            CREATE POLICY {table}_members_read ON {table} FOR SELECT
            USING ({column} IN (SELECT kb_member_spaces('reader')) OR kb_is_admin())
            """
        )
        op.execute(
            f"""
            CREATE POLICY {table}_owners_write ON {table} FOR ALL
            USING ({column} IN (SELECT kb_member_spaces('owner')) OR kb_is_admin())
            WITH CHECK ({column} IN (SELECT kb_member_spaces('owner')) OR kb_is_admin())
            """
        )


def downgrade() -> None:
    """Back to per-user rows: personal spaces map back to their owners; rows of shared
    spaces cannot belong to one user and are dropped (back up first)."""
    for table in (*SPACE_OWNED, "spaces", "space_members"):
        op.execute(f"DROP POLICY IF EXISTS {table}_members_read ON {table}")
        op.execute(f"DROP POLICY IF EXISTS {table}_editors_write ON {table}")
        op.execute(f"DROP POLICY IF EXISTS {table}_owners_write ON {table}")
    op.drop_table("source_files")
    for table in WAS_USER_OWNED:
        op.execute(
            f"DELETE FROM {table} WHERE space_id NOT IN"
            " (SELECT id FROM spaces WHERE kind = 'personal')"
        )

    op.drop_index("document_chunks_added_by_idx", "document_chunks")
    op.drop_index("document_chunks_space_source_idx", "document_chunks")
    op.drop_index("document_chunks_space_idx", "document_chunks")
    op.drop_constraint("document_chunks_added_by_fkey", "document_chunks", type_="foreignkey")
    op.execute(
        "UPDATE document_chunks AS c SET added_by = s.personal_of FROM spaces AS s"
        " WHERE s.id = c.space_id"
    )
    op.alter_column("document_chunks", "added_by", new_column_name="user_id", nullable=False)
    op.create_foreign_key(
        "document_chunks_user_id_fkey", "document_chunks", "users", ["user_id"], ["id"], ondelete="CASCADE"
    )
    op.create_index("document_chunks_user_idx", "document_chunks", ["user_id"])
    op.create_index(
        "document_chunks_user_source_idx",
        "document_chunks",
        ["user_id", "source_type", "source_id", "chunk_index"],
    )
    op.drop_column("document_chunks", "space_id")

    for table in ("index_records", "notion_connections", "notion_pages", "notion_syncs"):
        op.add_column(
            table,
            sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="CASCADE")),
        )
        op.execute(
            f"UPDATE {table} AS t SET user_id = s.personal_of FROM spaces AS s WHERE s.id = t.space_id"
        )
        op.alter_column(table, "user_id", nullable=False)
    op.execute(
        "UPDATE index_records SET namespace = user_id::text || '/documents'"
        " WHERE namespace = space_id::text || '/documents'"
    )
    op.drop_index("index_records_space_idx", "index_records")
    op.create_index("index_records_user_idx", "index_records", ["user_id"])
    op.drop_constraint("notion_connections_space_key", "notion_connections", type_="unique")
    op.create_unique_constraint("notion_connections_user_id_key", "notion_connections", ["user_id"])
    op.drop_column("notion_connections", "connected_by")
    op.drop_constraint("notion_pages_pkey", "notion_pages", type_="primary")
    op.create_primary_key("notion_pages_pkey", "notion_pages", ["user_id", "page_id"])
    op.drop_index("notion_syncs_space_started_idx", "notion_syncs")
    op.create_index("notion_syncs_user_started_idx", "notion_syncs", ["user_id", "started_at"])
    op.drop_column("notion_syncs", "started_by")
    for table in ("index_records", "notion_connections", "notion_pages", "notion_syncs"):
        op.drop_column(table, "space_id")

    op.drop_table("space_members")
    op.drop_table("spaces")
    op.execute("DROP FUNCTION kb_member_spaces(text)")
    op.execute("DROP FUNCTION kb_is_admin()")
    op.execute("DROP FUNCTION kb_current_user()")
    for table in WAS_USER_OWNED:
        op.execute(
            f"""
            CREATE POLICY {table}_user_isolation ON {table}
            USING (user_id = NULLIF(current_setting('app.user_id', true), '')::uuid)
            WITH CHECK (user_id = NULLIF(current_setting('app.user_id', true), '')::uuid)
            """
        )
