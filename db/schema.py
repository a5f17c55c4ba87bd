"""Run Alembic migrations programmatically and check the schema at start-up."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from db.errors import SchemaOutOfDate
from db.models import Base

__all__ = [
    "alembic_config",
    "check_schema",
    "current_revision",
    "head_revision",
    "upgrade_to_head",
    "vector_dimension",
]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: Every table the code expects; the ORM models mirror the migrations.
REQUIRED_TABLES: tuple[str, ...] = tuple(Base.metadata.tables)


def alembic_config(*, embedding_dimension: int = 384) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["embedding_dimension"] = embedding_dimension
    return config


def upgrade_to_head(engine: Engine, *, embedding_dimension: int = 384) -> None:
    """Bring the schema to the newest revision (a no-op when it is there already)."""
    config = alembic_config(embedding_dimension=embedding_dimension)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def head_revision() -> str:
    return str(ScriptDirectory.from_config(alembic_config()).get_current_head())


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def vector_dimension(engine: Engine) -> int | None:
    """The dimension of `document_chunks.embedding`, or None before migrations."""
    query = sa.text(
        "SELECT atttypmod FROM pg_attribute "
        "WHERE attrelid = to_regclass('document_chunks') AND attname = 'embedding'"
    )
    with engine.connect() as connection:
        value = connection.execute(query).scalar()
    return int(value) if value is not None and value > 0 else None


def check_schema(engine: Engine) -> None:
    """Fail with a message naming what is missing when the schema is not at head."""
    inspector = sa.inspect(engine)
    missing = [t for t in REQUIRED_TABLES if not inspector.has_table(t)]
    current, head = current_revision(engine), head_revision()
    if missing or current != head:
        what = f"missing tables: {', '.join(missing)}" if missing else ""
        rev = f"schema revision {current or 'none'}, code expects {head}"
        raise SchemaOutOfDate(
            "The database schema is not ready (" + "; ".join(p for p in (what, rev) if p) + ").",
            hint="Run `kb setup` to create or upgrade it.",
        )
