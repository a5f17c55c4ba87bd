"""Keyword search: BM25 over the readable spaces (`retrieval.bm25`), as passages.

`retrieval.bm25` ranks the chunks of the scope's spaces (statistics of those spaces
only, see migration 0007); this module turns the ranked row ids into `Passage`s,
reading the columns and the cosine similarity (NULL without a query vector) of the
best rows alone. Every statement filters by the readable spaces and runs on a
read-engine connection taken inside a `db.scoped.read_scope`, so row-level security
applies as a second guard.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from db.models import DocumentChunk
from retrieval import bm25
from retrieval.passages import Passage, SearchFilters
from retrieval.scope import SearchScope

__all__ = ["KeywordResult", "bm25_scores", "keyword_search", "vector_literal"]

_chunks = cast(sa.Table, DocumentChunk.__table__)


def vector_literal(vector: Sequence[float]) -> str:
    """pgvector's text form; sent as a bound parameter and cast to `vector`."""
    return "[" + ",".join(f"{float(v):.7g}" for v in vector) + "]"


_ROWS = sa.text(
    """
    SELECT c.id, c.chunk_id, c.text, c.metadata, c.space_id, c.source_type, c.source_id,
           c.source_url, c.chunk_index,
           1 - (c.embedding <=> CAST(:qv AS vector)) AS similarity
    FROM document_chunks AS c
    WHERE c.id = ANY(CAST(:ids AS bigint[])) AND c.space_id = ANY(CAST(:space_ids AS uuid[]))
    """
)


def _conditions(filters: SearchFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.source_type is not None:
        conditions.append(_chunks.c.source_type == filters.source_type)
    if filters.source_id is not None:
        conditions.append(_chunks.c.source_id == filters.source_id)
    return conditions


@dataclass(frozen=True)
class KeywordResult:
    """Passages best first (`Passage.score` is the BM25 score) and the question's
    largest possible BM25 score (the sum of its words' idf), a per-question scale."""

    passages: list[Passage]
    max_score: float


def keyword_search(
    connection: Connection,
    *,
    scope: SearchScope,
    query: str,
    limit: int,
    filters: SearchFilters | None = None,
    query_vector: Sequence[float] | None = None,
) -> KeywordResult:
    """Chunks of the scope's spaces with the highest BM25 score for `query`, best first.

    With `query_vector`, each passage also carries its cosine similarity.
    """
    filters = filters or SearchFilters()
    if not scope.spaces:
        return KeywordResult([], 0.0)
    where = bm25.Scope.of(scope.space_ids)
    prepared = bm25.prepare(connection, scope=where, query=query)
    ranked = bm25.top(
        connection, prepared, scope=where, limit=limit, conditions=_conditions(filters)
    ).matches
    if not ranked:
        return KeywordResult([], prepared.max_score)
    params: dict[str, Any] = {
        "ids": [m.id for m in ranked],
        "space_ids": scope.space_ids,
        "qv": vector_literal(query_vector) if query_vector is not None else None,
    }
    rows = {row["id"]: row for row in connection.execute(_ROWS, params).mappings()}
    passages = []
    for match in ranked:
        row = rows.get(match.id)
        if row is None:  # gone since it was ranked (another transaction's delete)
            continue
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
                score=match.score,
                similarity=None if similarity is None else float(similarity),
                metadata=metadata,
            )
        )
    return KeywordResult(passages, prepared.max_score)


def bm25_scores(
    connection: Connection, *, scope: SearchScope, query: str, chunk_ids: Sequence[str]
) -> dict[str, float]:
    """The BM25 score of each given chunk of the scope's spaces for `query` (0.0 for a
    chunk without any of its words): hybrid search scores the passages only the dense
    side found, so every candidate is judged on both sides."""
    if not scope.spaces or not chunk_ids:
        return dict.fromkeys(chunk_ids, 0.0)
    where = bm25.Scope.of(scope.space_ids)
    prepared = bm25.prepare(connection, scope=where, query=query)
    return bm25.score_chunks(connection, prepared, scope=where, chunk_ids=chunk_ids)
