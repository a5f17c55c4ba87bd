"""Full-text index per space: the GIN index's words carry the space they are in.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10

Keyword search always reads a set of spaces, but the GIN index of migration 0001
held one posting list per word for the whole table. A question of common words then
walked every space's chunks in the index, and ANDed the result with the space index:
at 1M chunks over ten spaces, 25 of the 35 ms of a three-word question (measured
with `EXPLAIN ANALYZE`, `docs/ranking.md`). A GIN index on `(space_id, text_tsv)`
would need `btree_gin`, which the embedded server does not ship. Instead the index is
on an expression: the chunk's lexemes, each prefixed with its space's tag (the first
`TAG_LENGTH` hex digits of the space id). A word's posting list is then per space, and
a search asks for `tag || word` for each space it reads (`retrieval.bm25`).

Tags of two spaces may collide (48 bits): the index then returns both spaces' chunks
for that word, and the search's `space_id` condition drops the other space's, so
results stay right. Lexemes too long to carry a tag (over 2047 bytes with it; the
parser keeps none that long) are left out of the index.

The expression's function is marked LEAKPROOF (as `@@` in migration 0001): under
row-level security PostgreSQL uses only leakproof functions in index conditions. It
only rewrites its arguments and raises no error. That needs superuser; without it,
keyword search stays right and reads every chunk of the spaces it searches.
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# Hex digits of the space id that prefix each lexeme (`retrieval.bm25.SPACE_TAG_LENGTH`).
TAG_LENGTH = 12
# tsvector and tsquery words are at most 2047 bytes.
LONGEST_WORD = 2047

# pg_catalog names only and no SET clause: the function is safe whatever the
# search_path, including a restore's, and stays an ordinary IMMUTABLE expression.
_FUNCTION = f"""
CREATE OR REPLACE FUNCTION kb_scoped_lexemes(space uuid, document tsvector) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT pg_catalog.array_to_tsvector(ARRAY(
        SELECT pg_catalog.left(pg_catalog.replace(space::text, '-', ''), {TAG_LENGTH})
               OPERATOR(pg_catalog.||) lexeme
        FROM pg_catalog.unnest(pg_catalog.tsvector_to_array(document)) AS lexeme
        WHERE pg_catalog.octet_length(lexeme) <= {LONGEST_WORD - TAG_LENGTH}
    ))
$$;
"""


def upgrade() -> None:
    op.execute(_FUNCTION)
    op.execute(
        """
        DO $$
        BEGIN
            ALTER FUNCTION kb_scoped_lexemes(uuid, tsvector) LEAKPROOF;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'kb_scoped_lexemes is not leakproof here: keyword search reads more rows';
        END
        $$;
        """
    )
    op.execute(
        "CREATE INDEX document_chunks_scoped_text_gin ON document_chunks"
        " USING gin (kb_scoped_lexemes(space_id, text_tsv))"
    )
    # Nothing searches the whole table's words any more; one GIN index to keep on write.
    op.execute("DROP INDEX IF EXISTS document_chunks_text_tsv_gin")


def downgrade() -> None:
    op.create_index(
        "document_chunks_text_tsv_gin", "document_chunks", ["text_tsv"], postgresql_using="gin"
    )
    op.execute("DROP INDEX IF EXISTS document_chunks_scoped_text_gin")
    op.execute("DROP FUNCTION IF EXISTS kb_scoped_lexemes(uuid, tsvector)")
