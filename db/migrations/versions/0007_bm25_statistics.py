"""BM25 keyword ranking: chunk lengths and per-scope term statistics, kept by triggers.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

BM25 needs, over the spaces a user may read: the number of chunks N, their mean
length, and for each word the number of chunks that contain it (df). Counting
them at query time reads every matching row, so they are kept instead:

- `document_chunks.token_count`: the chunk's length in indexed words (the number
  of positions in its tsvector, which is what BM25's document length counts). A
  generated column cannot read another one, and computing the tsvector twice per
  write doubled the cost of parsing, so `text_tsv` and `token_count` are now both
  set by one BEFORE trigger (same expression as migration 0001's generated column);
- `bm25_term_stats`: per space and lexeme, how many chunks contain
  it and how often it occurs; the lexeme '' holds the space's chunk count and total
  length. A search sums the rows of the spaces it reads. Statement-level triggers on `document_chunks` add one signed delta row
  per (scope, lexeme) in the writing transaction, for every write path (inserts,
  upserts that change the text, deletes, cascades, COPY). Writers never wait on each
  other and never deadlock on a shared counter; a reader sums the rows of each key,
  so it sees exactly the chunks its snapshot sees. To keep those rows few, about one
  write statement in FOLD_EVERY also folds the rows of the keys it touched into one
  (skipping rows another open transaction holds: `FOR UPDATE SKIP LOCKED`);
  `kb_bm25_stats_compact(space)` folds a whole space. Folding on every statement
  cost 3x the write work, measured on 10k-chunk batches.

The statistics are guarded by row-level security like the chunks (members of a
space read its rows): another space's df would reveal which words its documents
contain. The trigger functions that maintain them are SECURITY DEFINER: whoever may
write a chunk (the chunks' own policies decide) keeps its space's statistics right,
including a chunk moved between spaces.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SCOPED_ROLE = "kb_scoped"
# A write statement folds the keys it touched with probability 1 / FOLD_EVERY, so a
# key holds about FOLD_EVERY rows at most between folds.
FOLD_EVERY = 16

# Function bodies are quoted (not SQL-standard bodies) so PostgreSQL 13 accepts them.
# Those that name our own objects pin the schema they were created in (`SET search_path
# FROM CURRENT`), so they work whatever the caller's search_path; `kb_token_count` and
# `kb_bm25_terms` only call pg_catalog and carry no SET clause, so PostgreSQL can
# inline them (a function with a SET clause, or a STRICT set-returning one, is not).
_ROW_FUNCTIONS = """
CREATE OR REPLACE FUNCTION kb_token_count(document tsvector) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(sum(coalesce(array_length(positions, 1), 1)), 0)::integer
    FROM pg_catalog.unnest(document)
$$;

-- What one chunk adds to its scope's statistics: one row per lexeme (its frequency)
-- and the totals row '' (its length); each row counts the chunk once.
CREATE OR REPLACE FUNCTION kb_bm25_terms(document tsvector, length integer)
RETURNS TABLE (term text, tokens integer)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT lexeme, coalesce(array_length(positions, 1), 1) FROM pg_catalog.unnest(document)
    UNION ALL
    SELECT '', length
$$;

CREATE OR REPLACE FUNCTION kb_chunk_text_index() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    NEW.text_tsv := to_tsvector('english'::regconfig,
                                coalesce(NEW.metadata->>'title', '') || ' ' || NEW.text);
    NEW.token_count := kb_token_count(NEW.text_tsv);
    RETURN NEW;
END;
$$;

"""

_STATISTICS_FUNCTIONS = """
-- Merge the delta rows of the given keys (parallel arrays of scope and term) into
-- one row per key. Rows another open transaction holds are skipped and folded by a
-- later write, so writers never wait here. A key whose counts reach zero goes.
CREATE OR REPLACE FUNCTION kb_bm25_stats_fold(scopes uuid[], terms text[]) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path FROM CURRENT AS $$
    WITH touched AS (
        SELECT * FROM unnest(scopes, terms) AS k(space_id, term)
    ),
    several AS (
        SELECT s.space_id, s.term FROM bm25_term_stats AS s JOIN touched USING (space_id, term)
        GROUP BY s.space_id, s.term HAVING count(*) > 1
    ),
    locked AS (
        SELECT s.id, s.space_id, s.term FROM bm25_term_stats AS s JOIN several USING (space_id, term)
        FOR UPDATE OF s SKIP LOCKED
    ),
    keys AS (
        SELECT space_id, term FROM locked GROUP BY space_id, term HAVING count(*) > 1
    ),
    gone AS (
        DELETE FROM bm25_term_stats AS s
        USING locked AS l JOIN keys AS k USING (space_id, term)
        WHERE s.id = l.id
        RETURNING s.space_id, s.term, s.chunks, s.tokens
    )
    INSERT INTO bm25_term_stats (space_id, term, chunks, tokens)
    SELECT space_id, term, sum(chunks), sum(tokens) FROM gone
    GROUP BY space_id, term
    HAVING sum(chunks) <> 0 OR sum(tokens) <> 0
$$;

-- Fold every key of one space (tests, maintenance, after a bulk import).
CREATE OR REPLACE FUNCTION kb_bm25_stats_compact(scope uuid) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path FROM CURRENT AS $$
    SELECT kb_bm25_stats_fold(array_agg(space_id), array_agg(term))
    FROM (SELECT DISTINCT space_id, term FROM bm25_term_stats WHERE space_id = scope) AS keys
$$;

-- Statement-level: one call per INSERT/UPDATE/DELETE statement, whatever its size.
-- The triggers below name the transition tables kb_old / kb_new; each branch reads
-- only the ones its event has. An UPDATE that leaves text and owner alone (an
-- upsert of an unchanged chunk) changes nothing.
CREATE OR REPLACE FUNCTION kb_bm25_stats_apply() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    scopes uuid[];
    terms text[];
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM bm25_term_stats;
        RETURN NULL;
    ELSIF TG_OP = 'INSERT' THEN
        WITH added AS (
            INSERT INTO bm25_term_stats (space_id, term, chunks, tokens)
            SELECT n.space_id, t.term, count(*), sum(t.tokens)
            FROM kb_new AS n, kb_bm25_terms(n.text_tsv, n.token_count) AS t
            GROUP BY n.space_id, t.term
            RETURNING space_id, term
        )
        SELECT array_agg(space_id), array_agg(term) INTO scopes, terms
        FROM added;
    ELSIF TG_OP = 'DELETE' THEN
        WITH added AS (
            INSERT INTO bm25_term_stats (space_id, term, chunks, tokens)
            SELECT o.space_id, t.term, -count(*), -sum(t.tokens)
            FROM kb_old AS o, kb_bm25_terms(o.text_tsv, o.token_count) AS t
            -- A cascade from a deleted space: its statistics went with it.
            WHERE EXISTS (SELECT 1 FROM spaces AS s WHERE s.id = o.space_id)
            GROUP BY o.space_id, t.term
            RETURNING space_id, term
        )
        SELECT array_agg(space_id), array_agg(term) INTO scopes, terms
        FROM added;
    ELSE
        WITH changed AS (
            SELECT n.space_id AS new_space, n.text_tsv AS new_tsv, n.token_count AS new_length,
                   o.space_id AS old_space, o.text_tsv AS old_tsv, o.token_count AS old_length
            FROM kb_new AS n JOIN kb_old AS o USING (id)
            WHERE n.space_id <> o.space_id OR n.text_tsv IS DISTINCT FROM o.text_tsv
        ),
        signed AS (
            SELECT new_space AS space_id, new_tsv AS text_tsv, new_length AS length, 1 AS sign
            FROM changed
            UNION ALL
            SELECT old_space, old_tsv, old_length, -1 FROM changed
        ),
        added AS (
            INSERT INTO bm25_term_stats (space_id, term, chunks, tokens)
            SELECT s.space_id, t.term, sum(s.sign), sum(s.sign * t.tokens)
            FROM signed AS s, kb_bm25_terms(s.text_tsv, s.length) AS t
            GROUP BY s.space_id, t.term
            HAVING sum(s.sign) <> 0 OR sum(s.sign * t.tokens) <> 0
            RETURNING space_id, term
        )
        SELECT array_agg(space_id), array_agg(term) INTO scopes, terms
        FROM added;
    END IF;
    IF scopes IS NOT NULL AND random() * FOLD_EVERY < 1 THEN
        PERFORM kb_bm25_stats_fold(scopes, terms);
    END IF;
    RETURN NULL;
END;
$$;
"""


def upgrade() -> None:
    op.execute(_ROW_FUNCTIONS)
    # The tsvector keeps its values and becomes an ordinary column set by the trigger;
    # the length is filled by a table rewrite (as a generated column, which rebuilds
    # the indexes once instead of updating them row by row), then made ordinary too.
    op.execute("ALTER TABLE document_chunks ALTER COLUMN text_tsv DROP EXPRESSION")
    op.execute(
        "ALTER TABLE document_chunks ADD COLUMN token_count integer"
        " GENERATED ALWAYS AS (kb_token_count(text_tsv)) STORED"
    )
    op.execute("ALTER TABLE document_chunks ALTER COLUMN token_count DROP EXPRESSION")
    op.execute("ALTER TABLE document_chunks ALTER COLUMN token_count SET NOT NULL")
    op.execute(
        "CREATE TRIGGER document_chunks_text_index"
        " BEFORE INSERT OR UPDATE OF text, metadata ON document_chunks"
        " FOR EACH ROW EXECUTE FUNCTION kb_chunk_text_index()"
    )
    op.create_table(
        "bm25_term_stats",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "space_id",
            UUID(as_uuid=True),
            sa.ForeignKey("spaces.id", ondelete="CASCADE"),
            nullable=False,
        ),
        # A lexeme of `text_tsv`; '' is the row of the scope's totals.
        sa.Column("term", sa.Text, nullable=False),
        # Chunks containing the term (for '': chunks in the scope).
        sa.Column("chunks", sa.BigInteger, nullable=False),
        # Occurrences of the term (for '': total length of the scope's chunks).
        sa.Column("tokens", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "bm25_term_stats_key_idx",
        "bm25_term_stats",
        ["space_id", "term"],
        postgresql_include=["chunks", "tokens"],
    )
    op.execute(_STATISTICS_FUNCTIONS.replace("FOLD_EVERY", str(FOLD_EVERY)))
    # Statistics of the chunks already there, then the triggers that keep them.
    op.execute(
        """
        INSERT INTO bm25_term_stats (space_id, term, chunks, tokens)
        SELECT c.space_id, t.term, count(*), sum(t.tokens)
        FROM document_chunks AS c, kb_bm25_terms(c.text_tsv, c.token_count) AS t
        GROUP BY c.space_id, t.term
        """
    )
    for event, tables in (
        ("INSERT", "NEW TABLE AS kb_new"),
        ("UPDATE", "OLD TABLE AS kb_old NEW TABLE AS kb_new"),
        ("DELETE", "OLD TABLE AS kb_old"),
    ):
        op.execute(
            f"CREATE TRIGGER document_chunks_bm25_{event.lower()}"
            f" AFTER {event} ON document_chunks REFERENCING {tables}"
            " FOR EACH STATEMENT EXECUTE FUNCTION kb_bm25_stats_apply()"
        )
    op.execute(
        "CREATE TRIGGER document_chunks_bm25_truncate AFTER TRUNCATE ON document_chunks"
        " FOR EACH STATEMENT EXECUTE FUNCTION kb_bm25_stats_apply()"
    )
    _row_level_security()


def _row_level_security() -> None:
    """Members of a space read its statistics (as they read its chunks, migration 0002);
    only the SECURITY DEFINER trigger functions write them."""
    op.execute("ALTER TABLE bm25_term_stats ENABLE ROW LEVEL SECURITY")
    op.execute(
        """
        CREATE POLICY bm25_term_stats_members_read ON bm25_term_stats FOR SELECT
        USING (space_id IN (SELECT kb_member_spaces('reader')))
        """
    )
    op.execute(
        f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{SCOPED_ROLE}') THEN
                GRANT SELECT ON bm25_term_stats TO {SCOPED_ROLE};
            END IF;
        END
        $$;
        """
    )


def downgrade() -> None:
    for event in ("insert", "update", "delete", "truncate"):
        op.execute(f"DROP TRIGGER IF EXISTS document_chunks_bm25_{event} ON document_chunks")
    op.execute("DROP TRIGGER IF EXISTS document_chunks_text_index ON document_chunks")
    op.drop_table("bm25_term_stats")
    op.drop_column("document_chunks", "token_count")
    # Back to 0001's generated column (and its index, dropped with the column).
    op.drop_column("document_chunks", "text_tsv")
    op.execute(
        "ALTER TABLE document_chunks ADD COLUMN text_tsv tsvector GENERATED ALWAYS AS"
        " (to_tsvector('english'::regconfig, coalesce(metadata->>'title', '') || ' ' || text))"
        " STORED"
    )
    # As 0005 left it: the lexemes stay in the row.
    op.execute("ALTER TABLE document_chunks ALTER COLUMN text_tsv SET STORAGE MAIN")
    op.create_index(
        "document_chunks_text_tsv_gin", "document_chunks", ["text_tsv"], postgresql_using="gin"
    )
    for function in (
        "kb_bm25_stats_apply()",
        "kb_bm25_stats_compact(uuid)",
        "kb_bm25_stats_fold(uuid[], text[])",
        "kb_chunk_text_index()",
        "kb_bm25_terms(tsvector, integer)",
        "kb_token_count(tsvector)",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {function}")
