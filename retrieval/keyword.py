"""Keyword search: BM25-style ranking in PostgreSQL full text over `text_tsv`.

The one module of retrieval with hand-written SQL, because `websearch_to_tsquery`,
`@@` on the GIN index and the ranking arithmetic have no ORM form. The statement is
a constant with bound parameters; optional filters are parameters that may be NULL.
It filters by the readable spaces and runs on a read-engine connection taken inside
a `db.scoped.read_scope`, so row-level security applies as a second guard.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from retrieval.passages import Passage, SearchFilters
from retrieval.scope import SearchScope

__all__ = ["BM25_B", "BM25_K1", "keyword_search", "vector_literal"]

# BM25's usual constants.
BM25_K1 = 1.2
BM25_B = 0.75


def vector_literal(vector: Sequence[float]) -> str:
    """pgvector's text form; sent as a bound parameter and cast to `vector`."""
    return "[" + ",".join(f"{float(v):.7g}" for v in vector) + "]"


# Each query word weighs its inverse document frequency among the readable chunks
# (counted on the GIN index), scaled by chunk length (distinct lexemes against the mean
# over the matches; term frequency taken as 1). Candidates are the chunks with any of
# the words (plainto_tsquery's `&`/`<->` made `|`; the round trip through text keeps
# PostgreSQL's own parsing and stemming); those with every word (websearch_to_tsquery,
# so quotes and -word count there) come first. Only ids and lexemes are read per match
# (`strip` drops the positions and detoasts once, not once per word); the columns and
# the cosine similarity (NULL without a query vector) are read for the best rows alone.
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


def keyword_search(
    connection: Connection,
    *,
    scope: SearchScope,
    query: str,
    limit: int,
    filters: SearchFilters | None = None,
    query_vector: Sequence[float] | None = None,
) -> list[Passage]:
    """Chunks of the scope's spaces matching words of `query`, best first (see `_BM25`).

    With `query_vector`, each passage also carries its cosine similarity.
    """
    filters = filters or SearchFilters()
    if not scope.spaces:
        return []
    params: dict[str, Any] = {
        "space_ids": scope.space_ids,
        "q": query,
        "limit": limit,
        "k1": BM25_K1,
        "b": BM25_B,
        "source_type": filters.source_type,
        "source_id": filters.source_id,
        "qv": vector_literal(query_vector) if query_vector is not None else None,
    }
    passages = []
    for row in connection.execute(_BM25, params).mappings():
        similarity = row["similarity"]
        metadata = dict(row["metadata"] or {})
        metadata["space_name"] = scope.spaces.get(row["space_id"])
        passages.append(
            Passage(
                chunk_id=row["chunk_id"],
                text=row["text"],
                source_type=row["source_type"],
                source_id=row["source_id"],
                source_url=row["source_url"],
                chunk_index=int(row["chunk_index"]),
                score=float(row["rank"]),
                similarity=None if similarity is None else float(similarity),
                metadata=metadata,
            )
        )
    return passages
