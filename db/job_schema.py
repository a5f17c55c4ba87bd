"""procrastinate's tables and functions, applied by our Alembic migrations.

procrastinate (the job queue) ships its schema as plain SQL: `schema.sql` (what
`procrastinate schema --apply` runs) and one script per schema change in
`procrastinate/sql/migrations/`, named `XX.YY.ZZ_NN_[pre|post_]what.sql`, which replay
to exactly `schema.sql` (procrastinate's own CI checks that). It leaves tracking which
scripts ran to the application; ours is Alembic:

- revision 0004 replays the scripts up to and including `03.04.00_50_...`, the newest
  one procrastinate 3.10 ships (not `schema.sql`, which follows whatever version is
  installed: a revision must build the same schema every time it runs);
- upgrading procrastinate to a release with new scripts means one new Alembic
  revision that calls `apply_procrastinate_migrations(after=<previous bound>,
  upto=<new bound>)` and moves `SCHEMA_AT` forward. A test compares `SCHEMA_AT` with the
  installed package's newest script, so an upgrade without its revision fails CI, and
  `check_job_schema` refuses to start workers against a database that lacks it.

Our migrations run in one transaction; the scripts are applied through the driver
connection (they contain `%` and `:` that SQLAlchemy's text() would misread).
"""

from __future__ import annotations

import re
from pathlib import Path

from psycopg import sql
from sqlalchemy.engine import Connection

from db.errors import SchemaOutOfDate

__all__ = [
    "SCHEMA_AT",
    "apply_procrastinate_migrations",
    "check_job_schema",
    "drop_procrastinate_schema",
    "installed_migrations",
]

#: The newest procrastinate migration script the head Alembic revision applies.
SCHEMA_AT = "03.04.00_50_post_add_retry_failed_job_procedure"
_NAME = re.compile(r"^(\d{2})\.(\d{2})\.(\d{2})_(\d{2})_")


def _migrations_dir() -> Path:
    from procrastinate.schema import SchemaManager

    return Path(SchemaManager.get_migrations_path())


def _key(name: str) -> tuple[int, int, int, int]:
    match = _NAME.match(name)
    if match is None:
        raise ValueError(f"not a procrastinate migration name: {name}")
    major, minor, patch, serial = (int(g) for g in match.groups())
    return major, minor, patch, serial


def installed_migrations() -> list[str]:
    """The installed procrastinate's migration scripts (names without `.sql`), in order."""
    return sorted((p.stem for p in _migrations_dir().glob("*.sql")), key=_key)


def apply_procrastinate_migrations(
    connection: Connection, *, upto: str, after: str | None = None
) -> list[str]:
    """Run procrastinate's scripts after `after` (exclusive; None = from the first) up
    to `upto` (inclusive) on this connection's transaction; returns their names."""
    names = installed_migrations()
    if upto not in names:
        raise SchemaOutOfDate(
            f"The installed procrastinate lacks its migration {upto}.",
            hint="Install the procrastinate version pyproject.toml names, then run `kb setup`.",
        )
    chosen = [
        n for n in names if _key(n) <= _key(upto) and (after is None or _key(n) > _key(after))
    ]
    raw = connection.connection.driver_connection
    assert raw is not None
    folder = _migrations_dir()
    with raw.cursor() as cursor:
        for name in chosen:
            cursor.execute((folder / f"{name}.sql").read_text(encoding="utf-8"))
    return chosen


def check_job_schema() -> None:
    """Refuse to run procrastinate code newer than the schema our revisions apply."""
    newest = installed_migrations()[-1]
    if _key(newest) > _key(SCHEMA_AT):
        raise SchemaOutOfDate(
            f"The installed procrastinate expects its schema migration {newest}, but kb's "
            f"migrations stop at {SCHEMA_AT}.",
            hint="Install the procrastinate version pyproject.toml names (or add the Alembic "
            "revision that applies the new scripts).",
        )


def drop_procrastinate_schema(connection: Connection) -> None:
    """Drop every procrastinate table, function and type in the current schema (the
    downgrade of revision 0004, and `kb db reset`)."""
    raw = connection.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor:
        tables = cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            " AND tablename LIKE 'procrastinate\\_%'"
        ).fetchall()
        functions = cursor.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc AS p"
            " JOIN pg_namespace AS n ON n.oid = p.pronamespace"
            " WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate\\_%'"
        ).fetchall()
        types = cursor.execute(
            "SELECT t.typname FROM pg_type AS t JOIN pg_namespace AS n ON n.oid = t.typnamespace"
            " WHERE n.nspname = current_schema() AND t.typname LIKE 'procrastinate\\_%'"
            " AND t.typtype IN ('e', 'c') AND NOT EXISTS"
            " (SELECT 1 FROM pg_class AS c WHERE c.reltype = t.oid AND c.relkind <> 'c')"
        ).fetchall()
        for (table,) in tables:
            cursor.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(table)))
        for (signature,) in functions:
            # regprocedure's text is a valid, already quoted function signature.
            cursor.execute(sql.SQL("DROP FUNCTION IF EXISTS {} CASCADE").format(sql.SQL(signature)))
        for (name,) in types:
            cursor.execute(sql.SQL("DROP TYPE IF EXISTS {} CASCADE").format(sql.Identifier(name)))
