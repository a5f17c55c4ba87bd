"""The raw SQL of retrieval: pgvector cosine search and PostgreSQL full-text search.

This is the one module that writes SQL by hand, because pgvector's `<=>` operator,
its index-scan settings and `websearch_to_tsquery`/`ts_rank_cd` have no ORM form.
Every statement filters by `user_id` and runs on a connection the caller opened with
`db.scoped.user_scope`, so row-level security applies as a second guard.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

__all__ = [
    "ChunkHit",
    "SearchFilters",
    "keyword_search",
    "reciprocal_rank_fusion",
    "vector_literal",
    "vector_search",
]

# Columns every search returns; `similarity` is cosine similarity (1 - cosine distance)
# when a query vector was given, else NULL.
_COLUMNS = """
    chunk_id, text, metadata, source_type, source_id, source_url, chunk_index
"""


@dataclass(frozen=True)
class SearchFilters:
    """Optional metadata filters, applied in SQL next to the user filter."""

    source_type: str | None = None
    source_id: str | None = None

    @classmethod
    def from_dict(cls, filters: dict[str, str] | None) -> SearchFilters:
        from db.errors import InvalidInput

        filters = dict(filters or {})
        unknown = set(filters) - {"source_type", "source_id"}
        if unknown:
            raise InvalidInput(
                f"Unknown search filter(s): {', '.join(sorted(unknown))}.",
                hint="Filter by source_type and/or source_id.",
            )
        return cls(source_type=filters.get("source_type"), source_id=filters.get("source_id"))

    def where(self) -> tuple[str, dict[str, Any]]:
        clauses, params = ["user_id = :user_id"], {}
        if self.source_type:
            clauses.append("source_type = :source_type")
            params["source_type"] = self.source_type
        if self.source_id:
            clauses.append("source_id = :source_id")
            params["source_id"] = self.source_id
        return " AND ".join(clauses), params


@dataclass(frozen=True)
class ChunkHit:
    """One row found by a search, with the score of that search."""

    chunk_id: str
    text: str
    metadata: dict[str, Any]
    source_type: str
    source_id: str
    source_url: str | None
    chunk_index: int
    score: float
    similarity: float | None


def vector_literal(vector: Sequence[float]) -> str:
    """pgvector's text form; sent as a bound parameter and cast to `vector`."""
    return "[" + ",".join(f"{float(v):.7g}" for v in vector) + "]"


def _hits(rows: Any, score_column: str) -> list[ChunkHit]:
    hits = []
    for row in rows:
        m = row._mapping
        similarity = m["similarity"]
        hits.append(
            ChunkHit(
                chunk_id=m["chunk_id"],
                text=m["text"],
                metadata=dict(m["metadata"] or {}),
                source_type=m["source_type"],
                source_id=m["source_id"],
                source_url=m["source_url"],
                chunk_index=int(m["chunk_index"]),
                score=float(m[score_column]),
                similarity=None if similarity is None else float(similarity),
            )
        )
    return hits


def vector_search(
    connection: Connection,
    *,
    user_id: uuid.UUID,
    query_vector: Sequence[float],
    limit: int,
    filters: SearchFilters | None = None,
    ef_search: int | None = None,
) -> list[ChunkHit]:
    """The `limit` chunks of the user nearest to `query_vector` (cosine), best first.

    On the caller's connection (e.g. `ChunkStore.similarity_search` inside an indexing
    transaction); the retriever's dense list comes from `retrieval.pgvector_store`.

    The HNSW index is built over all users; with a `WHERE user_id = ...` filter a
    plain index scan stops after `ef_search` candidates and silently returns fewer
    rows. pgvector 0.8's iterative scan keeps walking the graph until enough rows
    pass the filter; `relaxed_order` is the fast variant, so the outer query sorts
    the (nearly sorted) rows again.
    """
    where, params = (filters or SearchFilters()).where()
    ef = ef_search or max(100, 2 * limit)
    # SET LOCAL takes no bind parameters; set_config(..., true) is its parameterised twin.
    connection.execute(
        sa.text(
            "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true),"
            " set_config('hnsw.ef_search', :ef, true)"
        ),
        {"ef": str(min(ef, 1000))},
    )
    statement = sa.text(
        f"""
        WITH nearest AS MATERIALIZED (
            SELECT {_COLUMNS}, embedding <=> CAST(:qv AS vector) AS distance
            FROM document_chunks
            WHERE {where}
            ORDER BY embedding <=> CAST(:qv AS vector)
            LIMIT :limit
        )
        SELECT {_COLUMNS}, 1 - distance AS similarity
        FROM nearest
        ORDER BY distance, chunk_id
        """
    )
    rows = connection.execute(
        statement,
        {"user_id": user_id, "qv": vector_literal(query_vector), "limit": limit, **params},
    )
    return _hits(rows, "similarity")


def keyword_search(
    connection: Connection,
    *,
    user_id: uuid.UUID,
    query: str,
    limit: int,
    filters: SearchFilters | None = None,
    query_vector: Sequence[float] | None = None,
    ranking: str | None = None,
) -> list[ChunkHit]:
    """Full-text search over the generated `text_tsv` column, best first.

    Chunks with every word (`websearch_to_tsquery`, which also understands quotes,
    OR and -word) come first; when fewer than `limit` have them all, chunks with some
    of the words follow, so a question phrased in many words still finds passages
    that share a few of them.
    Ranking: "bm25" (default, see `_bm25_sql`) or "cover_density" (`ts_rank_cd`).
    With `query_vector`, each hit also carries its cosine similarity.
    """
    where, params = (filters or SearchFilters()).where()
    similarity = (
        "1 - (embedding <=> CAST(:qv AS vector))" if query_vector is not None else "NULL::float8"
    )
    base = {
        "user_id": user_id,
        "q": query,
        "limit": limit,
        "norm": _RANK_NORMALIZATION,
        "k1": BM25_K1,
        "b": BM25_B,
        **params,
    }
    if query_vector is not None:
        base["qv"] = vector_literal(query_vector)
    ranking = ranking or KEYWORD_RANKING
    if ranking == "bm25":
        # One statement: chunks with every word first, then those with some of them.
        statement = sa.text(_bm25_sql(where, similarity))
        return _hits(connection.execute(statement, base), "rank")
    hits: list[ChunkHit] = []
    for tsquery in _TSQUERIES:
        statement = sa.text(_cover_density_sql(tsquery, where, similarity))
        seen = {h.chunk_id for h in hits}
        hits += [
            h for h in _hits(connection.execute(statement, base), "rank") if h.chunk_id not in seen
        ]
        if len(hits) >= limit:
            break
    return hits[:limit]


def _cover_density_sql(tsquery: str, where: str, similarity: str) -> str:
    """PostgreSQL's `ts_rank_cd`: rewards query words that occur close together but
    knows nothing of how rare a word is, so with an any-word query a frequent word
    ("cell", "2") weighs as much as a rare one ("PrP")."""
    return f"""
        SELECT {_COLUMNS}, ts_rank_cd(text_tsv, query, :norm) AS rank,
               {similarity} AS similarity
        FROM document_chunks, {tsquery} AS query
        WHERE {where} AND text_tsv @@ query
        ORDER BY rank DESC, chunk_id
        LIMIT :limit
    """


def _bm25_sql(where: str, similarity: str) -> str:
    """BM25-style ranking in SQL.

    Each query word weighs its inverse document frequency among the user's chunks
    (counted on the GIN index), scaled by chunk length (distinct lexemes against the
    mean over the matches; term frequency taken as 1). Candidates are the chunks with
    any of the words; those with every word (`websearch_to_tsquery`, so quotes and
    -word count there) come first. Only ids and lexemes are read per match (`strip`
    drops the positions and detoasts once, not once per word); the columns and the
    cosine similarity are fetched for the `limit` best rows alone.
    """
    every_word, any_word = _TSQUERIES
    return f"""
        WITH terms AS MATERIALIZED (
            SELECT DISTINCT CAST(quote_literal(lexeme) AS tsquery) AS term
            FROM unnest(to_tsvector('english', :q))
        ),
        counted AS MATERIALIZED (
            SELECT term,
                   (SELECT count(*) FROM document_chunks
                    WHERE {where} AND text_tsv @@ terms.term) AS df
            FROM terms
        ),
        idf AS MATERIALIZED (
            SELECT term, ln(1 + (total.n - df + 0.5) / (df + 0.5)) AS weight
            FROM counted,
                 (SELECT count(*)::float8 AS n FROM document_chunks WHERE {where}) AS total
            WHERE df > 0
        ),
        matches AS MATERIALIZED (
            SELECT id, strip(text_tsv) AS lexemes, length(text_tsv)::float8 AS dl,
                   coalesce(text_tsv @@ {every_word}, false) AS has_all
            FROM document_chunks, {any_word} AS query
            WHERE {where} AND text_tsv @@ query
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
        SELECT {_COLUMNS}, ranked.rank, {similarity} AS similarity
        FROM ranked JOIN document_chunks USING (id)
        WHERE {where}
        ORDER BY ranked.has_all DESC, ranked.rank DESC, chunk_id
    """


# The keyword ranking used by default, and BM25's usual constants.
KEYWORD_RANKING = "bm25"
BM25_K1 = 1.2
BM25_B = 0.75

# 1 = divide the rank by 1 + log(document length): long chunks match more words by chance.
_RANK_NORMALIZATION = 1

# The AND form, then the OR form of the same words (plainto_tsquery's `&`/`<->` made `|`;
# the round trip through text keeps PostgreSQL's own parsing and stemming).
_TSQUERIES = (
    "websearch_to_tsquery('english', :q)",
    "CAST(NULLIF(regexp_replace(CAST(plainto_tsquery('english', :q) AS text),"
    " ' (&|<->) ', ' | ', 'g'), '') AS tsquery)",
)


def reciprocal_rank_fusion(
    ranked_lists: Sequence[Sequence[ChunkHit]],
    *,
    k: int = 60,
    weights: Sequence[float] | None = None,
    limit: int | None = None,
) -> list[tuple[ChunkHit, float]]:
    """Fuse ranked lists: score = sum(weight / (k + rank)), rank starting at 1.

    langchain-postgres ships an RRF, but it takes SQLAlchemy rows keyed by their first
    column with a "distance" field and has no weights; this one fuses our hits directly
    and keeps the best cosine similarity seen for each chunk.
    """
    weights = list(weights) if weights is not None else [1.0] * len(ranked_lists)
    scores: dict[str, float] = {}
    best: dict[str, ChunkHit] = {}
    for weight, hits in zip(weights, ranked_lists, strict=True):
        for rank, hit in enumerate(hits, start=1):
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + weight / (k + rank)
            known = best.get(hit.chunk_id)
            if known is None or (known.similarity is None and hit.similarity is not None):
                best[hit.chunk_id] = hit
    fused = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    if limit is not None:
        fused = fused[:limit]
    return [(best[chunk_id], score) for chunk_id, score in fused]
