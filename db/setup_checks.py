"""`kb setup` and `kb doctor`: prepare a database and report on it."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from pgvector.sqlalchemy import Vector
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from db.engine import check_connection
from db.errors import ExtensionMissing, KbError
from db.schema import current_revision, head_revision, upgrade_to_head, vector_dimension
from db.scoped import rls_enforced

__all__ = [
    "Check",
    "SetupReport",
    "diagnose",
    "ensure_vector_extension",
    "run_setup",
    "vector_self_test",
]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class SetupReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, ok, detail))


def vector_versions(engine: Engine) -> tuple[str | None, str | None]:
    """(version the server could install, version created in this database)."""
    with engine.connect() as conn:
        available = conn.execute(
            sa.text("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'")
        ).scalar()
        installed = conn.execute(
            sa.text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        ).scalar()
    return available, installed


def ensure_vector_extension(engine: Engine) -> str:
    """CREATE EXTENSION vector (if missing); returns its version."""
    available, installed = vector_versions(engine)
    if installed:
        return str(installed)
    if not available:
        raise ExtensionMissing(
            "The pgvector extension is not installed on this PostgreSQL server.",
            hint="Install pgvector on the server (e.g. the pgvector/pgvector Docker image, "
            "or apt install postgresql-NN-pgvector), or unset DATABASE_URL to use the "
            "embedded server, which ships it.",
        )
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector"))
            return str(
                conn.execute(
                    sa.text("SELECT extversion FROM pg_extension WHERE extname='vector'")
                ).scalar()
            )
    except DBAPIError as exc:
        raise ExtensionMissing(
            f"Cannot create the pgvector extension: {str(exc.orig).splitlines()[0]}",
            hint="Ask a superuser to run CREATE EXTENSION vector; in this database once.",
        ) from None


def vector_self_test(engine: Engine, *, dimension: int) -> str:
    """Distance arithmetic, an insert and a nearest-neighbour query, all rolled back."""
    with engine.connect() as conn, conn.begin() as trans:
        distance = conn.execute(sa.text("SELECT '[1,2,3]'::vector <-> '[1,2,4]'::vector")).scalar()
        if distance is None or abs(float(distance) - 1.0) > 1e-6:
            raise KbError(f"pgvector self-test failed: expected distance 1, got {distance}.")
        table = sa.Table(
            "kb_selftest",
            sa.MetaData(),
            sa.Column("id", sa.Integer),
            sa.Column("v", Vector(dimension)),
            prefixes=["TEMPORARY"],
            postgresql_on_commit="DROP",
        )
        table.create(conn)
        unit_vectors = []
        for i in range(3):
            v = [0.0] * dimension
            v[i] = 1.0
            unit_vectors.append({"id": i, "v": v})
        conn.execute(table.insert(), unit_vectors)
        query = [0.0] * dimension
        query[1] = 1.0
        nearest = conn.execute(
            sa.select(table.c.id).order_by(table.c.v.cosine_distance(query)).limit(1)
        ).scalar()
        trans.rollback()
    if nearest != 1:
        raise KbError(f"pgvector self-test failed: nearest neighbour was {nearest}, expected 1.")
    return f"distance {float(distance):.1f}, nearest neighbour ok ({dimension} dims)"


# Functions that must be LEAKPROOF for keyword search to use its index under row-level
# security (migrations 0001 and 0008 mark them so when run by a superuser).
_INDEX_FUNCTIONS = (
    "pg_catalog.ts_match_vq(tsvector, tsquery)",
    "kb_scoped_lexemes(uuid, tsvector)",
)


def keyword_index_detail(engine: Engine) -> str:
    """Whether keyword search can use its full-text index under row-level security."""
    with engine.connect() as conn:
        leaky = [
            name
            for name in _INDEX_FUNCTIONS
            if conn.execute(
                sa.text("SELECT proleakproof FROM pg_proc WHERE oid = to_regprocedure(:f)"),
                {"f": name},
            ).scalar()
            is False
        ]
    if not leaky:
        return "index used under row-level security"
    statements = "; ".join(f"ALTER FUNCTION {name} LEAKPROOF" for name in leaky)
    return f"slower: reads every chunk of the spaces searched. Fix, as a superuser: {statements}"


def run_setup(engine: Engine, *, embedding_dimension: int) -> SetupReport:
    """Connect, ensure pgvector, migrate to head, self-test. Idempotent."""
    report = SetupReport()
    version = check_connection(engine)
    report.add("connection", True, f"PostgreSQL {version}")
    report.add("extension", True, f"vector {ensure_vector_extension(engine)}")
    before = current_revision(engine)
    try:
        upgrade_to_head(engine, embedding_dimension=embedding_dimension)
    except DBAPIError as exc:
        raise KbError(
            f"Migrating the schema failed: {str(exc.orig).splitlines()[0]}",
            hint="Check that the user owns the database (or has CREATE on it).",
        ) from None
    after = current_revision(engine)
    report.add(
        "schema",
        True,
        f"revision {after}"
        + (" (unchanged)" if before == after else f" (was {before or 'empty'})"),
    )
    column = vector_dimension(engine)
    if column != embedding_dimension:
        report.add(
            "dimension",
            False,
            f"document_chunks stores {column}-d vectors; the model makes {embedding_dimension}-d",
        )
    report.add("vector self-test", True, vector_self_test(engine, dimension=embedding_dimension))
    report.add(
        "row-level security",
        True,
        "enforced (role kb_scoped)"
        if rls_enforced(engine)
        else "policies only (no kb_scoped role)",
    )
    report.add("keyword index", True, keyword_index_detail(engine))
    return report


def diagnose(engine: Engine, *, model: str, model_dimension: int) -> SetupReport:
    """Versions and checks for `kb doctor`; never raises for a failed check."""
    report = SetupReport()
    try:
        report.add("postgresql", True, check_connection(engine))
    except KbError as exc:
        report.add("postgresql", False, str(exc))
        return report
    available, installed = vector_versions(engine)
    report.add("pgvector available", bool(available), str(available or "not installed on server"))
    report.add("vector extension", bool(installed), str(installed or "not created: run kb setup"))
    current, head = current_revision(engine), head_revision()
    report.add("schema revision", current == head, f"{current or 'none'} (code: {head})")
    column = vector_dimension(engine)
    report.add("embedding model", True, model)
    report.add(
        "dimension",
        column in (None, model_dimension),
        f"model {model_dimension}, column {column if column is not None else 'n/a'}",
    )
    report.add("row-level security", True, "enforced" if rls_enforced(engine) else "policies only")
    if current is not None:
        report.add("keyword index", True, keyword_index_detail(engine))
    return report
