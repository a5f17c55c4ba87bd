"""Reset the target database: drop every table of ours and migrate a blank schema.

The rollback of `kb migrate` (and a clean slate for tests and demos). It keeps
the database, the `vector` extension and the `kb_scoped` role, so it needs no
more privileges than `kb setup`; the vector dimension stays what it was.
"""

from __future__ import annotations

from psycopg import sql
from sqlalchemy.engine import Engine

from db.job_schema import drop_procrastinate_schema
from db.schema import REQUIRED_TABLES, upgrade_to_head, vector_dimension

__all__ = ["reset_database"]

_DEFAULT_DIMENSION = 384


def reset_database(engine: Engine, *, embedding_dimension: int | None = None) -> None:
    """Drop our tables (data included) and recreate them empty at the head revision."""
    dimension = embedding_dimension or vector_dimension(engine) or _DEFAULT_DIMENSION
    tables = [*REQUIRED_TABLES, "alembic_version"]
    statement = sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(
        sql.SQL(", ").join(sql.Identifier(t) for t in tables)
    )
    with engine.begin() as connection:
        raw = connection.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cursor:
            cursor.execute(statement)
        # The job queue's tables, functions and types (revision 0004 creates them again).
        drop_procrastinate_schema(connection)
    upgrade_to_head(engine, embedding_dimension=dimension)
