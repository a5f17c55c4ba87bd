"""Typed ORM models of every table. Alembic migrations own the schema; these mirror it.

`users`, `threads`, `steps`, `elements` and `feedbacks` are the tables Chainlit's
SQLAlchemy data layer reads and writes with quoted camelCase columns; `users` also
carries our login fields, so a person has exactly one row.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import UserDefinedType

__all__ = [
    "SPACE_OWNED_TABLES",
    "Base",
    "DocumentChunk",
    "Element",
    "Feedback",
    "IndexRecord",
    "Job",
    "JobFile",
    "LoginSession",
    "LoginThrottle",
    "NotionConnection",
    "NotionPage",
    "NotionSync",
    "PgLsn",
    "ReadPosition",
    "SourceFile",
    "Space",
    "SpaceMember",
    "Step",
    "StoredFile",
    "Thread",
    "UsageLog",
    "User",
]

#: Tables whose rows belong to a space: row-level security admits members only.
SPACE_OWNED_TABLES: tuple[str, ...] = (
    "document_chunks",
    "index_records",
    "notion_connections",
    "notion_pages",
    "notion_syncs",
    "source_files",
)


class Base(DeclarativeBase):
    pass


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class User(Base):
    """A person who logs in. `identifier` is the login (email or user name), lower-case."""

    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    identifier: Mapped[str] = mapped_column(Text, unique=True, nullable=False)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, nullable=False)
    createdAt: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    password_hash: Mapped[str | None] = mapped_column(Text)
    display_name: Mapped[str | None] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    is_admin: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class Space(Base):
    """Where indexed content lives: a person's own (`personal`) or a team's (`shared`)."""

    __tablename__ = "spaces"

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()
    )
    name: Mapped[str] = mapped_column(Text, nullable=False)
    kind: Mapped[str] = mapped_column(Text, nullable=False)  # personal | shared
    personal_of: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), unique=True
    )
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class SpaceMember(Base):
    """A person's role in a space: reader < editor < owner."""

    __tablename__ = "space_members"

    space_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("spaces.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(Text, nullable=False)
    added_by: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    added_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


def _space_fk(*, primary_key: bool = False) -> Mapped[uuid.UUID]:
    return mapped_column(
        UUID(as_uuid=True),
        ForeignKey("spaces.id", ondelete="CASCADE"),
        nullable=False,
        primary_key=primary_key,
    )


def _user_ref() -> Mapped[uuid.UUID | None]:
    return mapped_column(UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL"))


class Thread(Base):
    __tablename__ = "threads"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    createdAt: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    userId: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE")
    )
    userIdentifier: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)


class Step(Base):
    __tablename__ = "steps"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    type: Mapped[str] = mapped_column(Text, nullable=False)
    threadId: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("threads.id", ondelete="CASCADE"), nullable=False
    )
    parentId: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    streaming: Mapped[bool] = mapped_column(Boolean, nullable=False)
    waitForAnswer: Mapped[bool | None] = mapped_column(Boolean)
    isError: Mapped[bool | None] = mapped_column(Boolean)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)
    tags: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    input: Mapped[str | None] = mapped_column(Text)
    output: Mapped[str | None] = mapped_column(Text)
    createdAt: Mapped[str | None] = mapped_column(Text)
    command: Mapped[str | None] = mapped_column(Text)
    start: Mapped[str | None] = mapped_column(Text)
    end: Mapped[str | None] = mapped_column(Text)
    generation: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    showInput: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(Text)
    indent: Mapped[int | None] = mapped_column(Integer)
    defaultOpen: Mapped[bool | None] = mapped_column(Boolean)
    autoCollapse: Mapped[bool | None] = mapped_column(Boolean)
    modes: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    icon: Mapped[str | None] = mapped_column(Text)


class Element(Base):
    __tablename__ = "elements"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    threadId: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("threads.id", ondelete="CASCADE")
    )
    type: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    chainlitKey: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    display: Mapped[str | None] = mapped_column(Text)
    objectKey: Mapped[str | None] = mapped_column(Text)
    size: Mapped[str | None] = mapped_column(Text)
    page: Mapped[int | None] = mapped_column(Integer)
    language: Mapped[str | None] = mapped_column(Text)
    forId: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    mime: Mapped[str | None] = mapped_column(Text)
    props: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    autoPlay: Mapped[bool | None] = mapped_column(Boolean)
    playerConfig: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class Feedback(Base):
    __tablename__ = "feedbacks"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    forId: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    threadId: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("threads.id", ondelete="CASCADE"), nullable=False
    )
    value: Mapped[int] = mapped_column(Integer, nullable=False)
    comment: Mapped[str | None] = mapped_column(Text)


class DocumentChunk(Base):
    """One indexed passage with its vector. `text_tsv` and `token_count` (its length in
    indexed words, BM25's document length) are set by a PostgreSQL trigger."""

    __tablename__ = "document_chunks"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    chunk_id: Mapped[str] = mapped_column(Text, unique=True, nullable=False)
    space_id: Mapped[uuid.UUID] = _space_fk()
    added_by: Mapped[uuid.UUID | None] = _user_ref()
    text: Mapped[str] = mapped_column(Text, nullable=False)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, nullable=False)
    source_type: Mapped[str] = mapped_column(String(32), nullable=False)
    source_id: Mapped[str] = mapped_column(Text, nullable=False)
    source_url: Mapped[str | None] = mapped_column(Text)
    chunk_index: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    # The dimension is fixed by the migration from the embedding model; 384 is the default.
    embedding: Mapped[list[float]] = mapped_column(Vector(), nullable=False)
    text_tsv: Mapped[Any] = mapped_column(TSVECTOR, server_default=None, nullable=True)
    token_count: Mapped[int] = mapped_column(Integer, server_default=None, nullable=False)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class Bm25TermStat(Base):
    """BM25 statistics of one space, kept by triggers on `document_chunks` (migration
    0005) as signed delta rows: sum the rows of a (space, term) for its counts. The term
    '' holds the space's chunk count and total length."""

    __tablename__ = "bm25_term_stats"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    space_id: Mapped[uuid.UUID] = _space_fk()
    term: Mapped[str] = mapped_column(Text, nullable=False)
    chunks: Mapped[int] = mapped_column(BigInteger, nullable=False)
    tokens: Mapped[int] = mapped_column(BigInteger, nullable=False)


class IndexRecord(Base):
    """LangChain indexing-API records: which chunk key belongs to which source, and when."""

    __tablename__ = "index_records"

    namespace: Mapped[str] = mapped_column(Text, primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    space_id: Mapped[uuid.UUID] = _space_fk()
    group_id: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[float] = mapped_column(Float, nullable=False)


class NotionConnection(Base):
    """A space's Notion integration; the token is Fernet-encrypted."""

    __tablename__ = "notion_connections"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    space_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("spaces.id", ondelete="CASCADE"), unique=True, nullable=False
    )
    connected_by: Mapped[uuid.UUID | None] = _user_ref()
    token_encrypted: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    workspace_name: Mapped[str | None] = mapped_column(Text)
    bot_id: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class NotionPage(Base):
    """Sync state of one Notion page in one space."""

    __tablename__ = "notion_pages"

    space_id: Mapped[uuid.UUID] = _space_fk(primary_key=True)
    page_id: Mapped[str] = mapped_column(Text, primary_key=True)
    kind: Mapped[str] = mapped_column(Text, nullable=False, server_default="page")  # or database
    title: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    parent_id: Mapped[str | None] = mapped_column(Text)
    last_edited_time: Mapped[str | None] = mapped_column(Text)
    chunk_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="indexed")
    error: Mapped[str | None] = mapped_column(Text)
    synced_at: Mapped[datetime] = _now()


class NotionSync(Base):
    """One sync run."""

    __tablename__ = "notion_syncs"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    space_id: Mapped[uuid.UUID] = _space_fk()
    started_by: Mapped[uuid.UUID | None] = _user_ref()
    status: Mapped[str] = mapped_column(Text, nullable=False)  # running|success|partial|failed
    started_at: Mapped[datetime] = _now()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    pages_seen: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    pages_new: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    pages_updated: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    pages_unchanged: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    pages_removed: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    pages_failed: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    chunks_written: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")


class UsageLog(Base):
    __tablename__ = "usage_logs"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    action: Mapped[str] = mapped_column(Text, nullable=False)
    mode: Mapped[str | None] = mapped_column(Text)
    k: Mapped[int | None] = mapped_column(Integer)
    retrieval_ms: Mapped[float | None] = mapped_column(Float)
    generation_ms: Mapped[float | None] = mapped_column(Float)
    sources_count: Mapped[int | None] = mapped_column(Integer)
    model: Mapped[str | None] = mapped_column(Text)
    tokens_used: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    created_at: Mapped[datetime] = _now()


class StoredFile(Base):
    """Bytes of chat attachments (Chainlit elements), served by an authenticated route."""

    __tablename__ = "stored_files"

    object_key: Mapped[str] = mapped_column(Text, primary_key=True)
    # Taken from Chainlit's key; ownership is checked through elements -> threads.
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE")
    )
    mime: Mapped[str | None] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = _now()


class SourceFile(Base):
    """The bytes of an indexed file, per space: what a citation's "open the file" serves."""

    __tablename__ = "source_files"

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()
    )
    space_id: Mapped[uuid.UUID] = _space_fk()
    source_id: Mapped[str] = mapped_column(Text, nullable=False)
    filename: Mapped[str] = mapped_column(Text, nullable=False)
    mime: Mapped[str | None] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sha256: Mapped[str] = mapped_column(Text, nullable=False)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    added_by: Mapped[uuid.UUID | None] = _user_ref()
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class LoginSession(Base):
    """One login: the signed session cookie names this row, and a request is admitted
    only while it is neither revoked nor expired and its user is enabled."""

    __tablename__ = "login_sessions"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    provider: Mapped[str] = mapped_column(Text, nullable=False, server_default="credentials")
    client_address: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LoginThrottle(Base):
    """A fixed-window counter of failed logins (key: login name or client address)."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    hits: Mapped[int] = mapped_column(Integer, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class Job(Base):
    """kb's view of a background job, keyed by procrastinate's job id (`procrastinate_jobs.id`,
    deleted with it): what it does, for whom, its progress and its outcome."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(Text, nullable=False)  # index_file|notion_sync|delete_source
    space_id: Mapped[uuid.UUID] = _space_fk()
    requested_by: Mapped[uuid.UUID | None] = _user_ref()  # None: the schedule
    origin: Mapped[str] = mapped_column(Text, nullable=False)  # chat|cli|schedule
    title: Mapped[str] = mapped_column(Text, nullable=False)
    source_type: Mapped[str | None] = mapped_column(Text)
    source_id: Mapped[str | None] = mapped_column(Text)
    # queued|running|retrying|done|failed|cancelled
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="queued")
    phase: Mapped[str] = mapped_column(Text, nullable=False, server_default="queued")
    done: Mapped[int | None] = mapped_column(Integer)
    total: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")  # starts
    worker: Mapped[str | None] = mapped_column(Text)  # who runs (ran) it: host:pid/queue
    thread_id: Mapped[str | None] = mapped_column(Text)
    step_id: Mapped[str | None] = mapped_column(Text)
    step_final: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    created_at: Mapped[datetime] = _now()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = _now()


class JobFile(Base):
    """The bytes of a file waiting for its indexing job (deleted once indexed)."""

    __tablename__ = "job_files"

    job_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    filename: Mapped[str] = mapped_column(Text, nullable=False)
    mime: Mapped[str | None] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sha256: Mapped[str] = mapped_column(Text, nullable=False)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = _now()


class PgLsn(UserDefinedType[str]):
    """PostgreSQL's `pg_lsn`: a position in the write-ahead log, as text ("16/B374D848")."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "pg_lsn"


class ReadPosition(Base):
    """Where a person's latest own writes end in the primary's WAL: their reads go to a
    replica only once it has replayed past it (see `db.read_positions`)."""

    __tablename__ = "read_positions"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    lsn: Mapped[str] = mapped_column(PgLsn(), nullable=False)
    noted_at: Mapped[datetime] = _now()
