"""Chunk vectors and lexemes stored in the row, not in TOAST.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

A chunk row is over PostgreSQL's 2 kB TOAST threshold (a 384-d vector alone is
1,544 bytes), and pgvector's `vector` type defaults to EXTERNAL storage, so every
vector was moved out of line. The exact search of a small readable set
(`retrieval.dense`) then paid a TOAST index lookup and a second heap page for every
row it ranked: about 5 buffer reads per chunk instead of 1 (measured with
`EXPLAIN (ANALYZE, BUFFERS)` on the 500k-chunk spaces bench). Keyword search reads
`text_tsv` of every matching row the same way.

MAIN keeps both in the row (compressed if that helps, out of line only as a last
resort); the chunk's `text` and `metadata`, needed only for the few rows returned,
are the ones moved out when a row is too wide. This applies to rows written from now
on: `VACUUM FULL document_chunks` rewrites older rows (it locks the table while it
runs).
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE document_chunks ALTER COLUMN embedding SET STORAGE MAIN")
    op.execute("ALTER TABLE document_chunks ALTER COLUMN text_tsv SET STORAGE MAIN")


def downgrade() -> None:
    op.execute("ALTER TABLE document_chunks ALTER COLUMN text_tsv SET STORAGE EXTENDED")
    op.execute("ALTER TABLE document_chunks ALTER COLUMN embedding SET STORAGE EXTERNAL")
