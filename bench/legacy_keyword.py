"""The keyword search before issue 16, kept for `bench/retrieval.py`'s before/after.

BM25-style ranking with term frequency taken as 1, df counted per query on the GIN
index, and every chunk with any query word ranked (main's `retrieval/keyword.py` at
cb4368e, its SQL unchanged). Not used by the app.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

__all__ = ["legacy_keyword_search"]

_BM25 = sa.text(
    """
    WITH terms AS MATERIALIZED (
        SELECT DISTINCT CAST(quote_literal(lexeme) AS tsquery) AS term
        FROM unnest(to_tsvector('english', :q))
    ),
    scope AS MATERIALIZED (
        SELECT count(*)::float8 AS n FROM document_chunks
        WHERE space_id = ANY(CAST(:space_ids AS uuid[]))
          AND (CAST(:source_type AS text) IS NULL OR source_type = :source_type)
          AND (CAST(:source_id AS text) IS NULL OR source_id = :source_id)
    ),
    counted AS MATERIALIZED (
        SELECT term,
               (SELECT count(*) FROM document_chunks
                WHERE space_id = ANY(CAST(:space_ids AS uuid[]))
                  AND (CAST(:source_type AS text) IS NULL OR source_type = :source_type)
                  AND (CAST(:source_id AS text) IS NULL OR source_id = :source_id)
                  AND text_tsv @@ terms.term) AS df
        FROM terms
    ),
    idf AS MATERIALIZED (
        SELECT term, ln(1 + (scope.n - df + 0.5) / (df + 0.5)) AS weight
        FROM counted, scope
        WHERE df > 0
    ),
    matches AS MATERIALIZED (
        SELECT id, strip(text_tsv) AS lexemes, length(text_tsv)::float8 AS dl,
               coalesce(text_tsv @@ websearch_to_tsquery('english', :q), false) AS has_all
        FROM document_chunks,
             CAST(NULLIF(regexp_replace(CAST(plainto_tsquery('english', :q) AS text),
                                        ' (&|<->) ', ' | ', 'g'), '') AS tsquery) AS query
        WHERE space_id = ANY(CAST(:space_ids AS uuid[]))
          AND (CAST(:source_type AS text) IS NULL OR source_type = :source_type)
          AND (CAST(:source_id AS text) IS NULL OR source_id = :source_id)
          AND text_tsv @@ query
    ),
    ranked AS (
        SELECT id, has_all,
               (SELECT coalesce(sum(idf.weight), 0) FROM idf WHERE m.lexemes @@ idf.term)
               * (:k1 + 1)
               / (1 + :k1 * (1 - :b + :b * dl / greatest(avg(dl) OVER (), 1))) AS rank
        FROM matches AS m
        ORDER BY has_all DESC, rank DESC, id
        LIMIT :limit
    )
    SELECT c.chunk_id, c.text, c.metadata, c.space_id, c.source_type, c.source_id,
           c.source_url, c.chunk_index, ranked.rank,
           1 - (c.embedding <=> CAST(:qv AS vector)) AS similarity
    FROM ranked JOIN document_chunks AS c USING (id)
    WHERE c.space_id = ANY(CAST(:space_ids AS uuid[]))
    ORDER BY ranked.has_all DESC, ranked.rank DESC, c.chunk_id
    """
)


def legacy_keyword_search(
    connection: Connection, *, space_ids: Sequence[uuid.UUID], query: str, limit: int
) -> list[str]:
    """Chunk ids, best first, as the old keyword search ranked them."""
    params = {
        "space_ids": list(space_ids),
        "q": query,
        "limit": limit,
        "k1": 1.2,
        "b": 0.75,
        "source_type": None,
        "source_id": None,
        "qv": None,
    }
    return [row.chunk_id for row in connection.execute(_BM25, params)]
