"""BM25 keyword ranking computed in PostgreSQL, over exactly the rows a scope may read.

Score of a chunk d for the distinct query words t (Lucene's BM25, as bm25s and
Elasticsearch compute it):

    sum over t in d of  idf(t) * tf / (tf + k1 * (1 - b + b * len(d) / avg_len))
    idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))

Words are PostgreSQL's English lexemes (the `text_tsv` column: stemmed, stop words
dropped), tf is the number of positions of the lexeme in the chunk, len(d) the
chunk's `token_count`. N, avg_len and df come from `bm25_term_stats`, which triggers
keep per space in the writing transaction (migration 0007): reading them costs a few
index rows per query word and space, and they count exactly the chunks the reader's
snapshot, space filter and row-level security admit, nothing of other spaces.

Finding the best chunks: when at most `EXACT_ROWS` chunks can contain a query word
(df summed over the words), every one of them is scored: the exact BM25 top list.
Otherwise a question made of common words would score tens of thousands of rows, so
the search first scores the chunks that contain the rarest words together (a few
GIN index intersections), takes the k-th best score as a threshold, and keeps only
the combinations of words whose best possible score (sum of their idf) reaches it
(MaxScore/WAND pruning, expressed as one tsquery). If that candidate set is still
too large, the chunks with the rarest words together are the answer: a bounded
approximation, flagged in `Bm25Result.exact`. Every returned score is exact.

Matching uses the full-text index of migration 0008, whose words carry their space's
tag (`kb_scoped_lexemes`): a search asks for each word once per readable space, so the
index walks only those spaces' posting lists, never the whole table's.

Source filters (`conditions`) restrict which chunks are returned; like a filter in
Lucene, they do not change the statistics, which belong to the readable spaces.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, REGCONFIG, TSQUERY
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement, Grouping
from sqlalchemy.sql.expression import FromClause

from db.models import Bm25TermStat, DocumentChunk

__all__ = [
    "BM25_B",
    "BM25_K1",
    "EXACT_ROWS",
    "Bm25Match",
    "Bm25Params",
    "Bm25Query",
    "Bm25Result",
    "Scope",
    "idf",
    "prepare",
    "score_chunks",
    "top",
]

# BM25's usual constants (tf saturation, length normalisation).
BM25_K1 = 1.2
BM25_B = 0.75
# Score every candidate when at most this many chunks contain a query word.
EXACT_ROWS = 10_000
# Largest row count a pruning step (probe or pruned candidates) may score.
PRUNED_ROWS = 3_000
# Hex digits of the space id that prefix each word in the full-text index (migration
# 0008's `kb_scoped_lexemes`), and the longest word tsquery takes.
SPACE_TAG_LENGTH = 12
LONGEST_WORD = 2047
# Words considered for the probe and for the pruned combinations (rarest first).
PRUNING_WORDS = 12
# Most word combinations a pruned tsquery may list before pruning gives up.
MAX_COMBINATIONS = 128

_chunks = cast(sa.Table, DocumentChunk.__table__)
_stats = cast(sa.Table, Bm25TermStat.__table__)
_CONFIG = sa.cast(sa.literal("english"), REGCONFIG)
# The statistics row of a scope's totals (chunk count, summed length).
_TOTALS = ""


@dataclass(frozen=True)
class Scope:
    """The rows a search may read: those of the spaces `space_ids`.

    Both `document_chunks` and `bm25_term_stats` carry `space_id`, so the same scope
    selects the chunks and their statistics.
    """

    space_ids: tuple[uuid.UUID, ...]

    @classmethod
    def of(cls, space_ids: Iterable[uuid.UUID]) -> Scope:
        return cls(tuple(space_ids))

    def where(self, table: FromClause) -> ColumnElement[bool]:
        column = table.c.space_id
        if len(self.space_ids) == 1:
            return cast(ColumnElement[bool], column == self.space_ids[0])
        return column.in_(self.space_ids)


@dataclass(frozen=True)
class Bm25Params:
    """BM25's free parameters: tf saturation `k1`, length normalisation `b`."""

    k1: float = BM25_K1
    b: float = BM25_B


@dataclass(frozen=True)
class Bm25Query:
    """A question prepared against one scope's statistics (words it does not hold
    are dropped: they match nothing). Words are ordered rarest first."""

    terms: tuple[str, ...]
    idf: tuple[float, ...]
    df: tuple[int, ...]
    chunks: int
    avg_length: float
    params: Bm25Params

    @property
    def max_score(self) -> float:
        """An upper bound of any chunk's score: every word's idf (tf/(tf+K) < 1).
        Dividing by it puts scores on a 0..1 scale comparable across questions."""
        return sum(self.idf)


@dataclass(frozen=True)
class Bm25Match:
    """One ranked chunk: its row id, its `chunk_id` and its BM25 score."""

    id: int
    chunk_id: str
    score: float


@dataclass(frozen=True)
class Bm25Result:
    """The best chunks, best first. `exact` is False when pruning had to stop early and
    the list is the best of a bounded candidate set; `rows_scored` counts the work."""

    matches: list[Bm25Match]
    exact: bool
    rows_scored: int


def idf(chunks: int, df: int) -> float:
    """BM25's inverse document frequency (Lucene's, never negative)."""
    return math.log(1 + (chunks - df + 0.5) / (df + 0.5))


def prepare(
    connection: Connection, *, scope: Scope, query: str, params: Bm25Params | None = None
) -> Bm25Query:
    """The query's distinct lexemes with their df, and the scope's N and mean length."""
    lexemes = (
        sa.func.unnest(
            sa.func.array_append(
                sa.func.tsvector_to_array(sa.func.to_tsvector(_CONFIG, query)), _TOTALS
            )
        )
        .table_valued("term")
        .render_derived(name="q")
    )
    statement = (
        sa.select(
            lexemes.c.term,
            sa.func.coalesce(sa.func.sum(_stats.c.chunks), 0),
            sa.func.coalesce(sa.func.sum(_stats.c.tokens), 0),
        )
        .select_from(
            lexemes.outerjoin(_stats, sa.and_(_stats.c.term == lexemes.c.term, scope.where(_stats)))
        )
        .group_by(lexemes.c.term)
    )
    counts = {
        str(term): (int(df), int(tokens)) for term, df, tokens in connection.execute(statement)
    }
    chunks, length = counts.pop(_TOTALS, (0, 0))
    present = sorted(
        ((term, df) for term, (df, _) in counts.items() if df > 0 and chunks > 0),
        key=lambda item: (item[1], item[0]),
    )
    return Bm25Query(
        terms=tuple(term for term, _ in present),
        idf=tuple(idf(chunks, df) for _, df in present),
        df=tuple(df for _, df in present),
        chunks=chunks,
        avg_length=length / chunks if chunks else 0.0,
        params=params or Bm25Params(),
    )


def top(
    connection: Connection,
    prepared: Bm25Query,
    *,
    scope: Scope,
    limit: int,
    conditions: Sequence[ColumnElement[bool]] = (),
) -> Bm25Result:
    """The `limit` chunks of the scope with the highest BM25 score, best first."""
    if not prepared.terms or limit < 1:
        return Bm25Result([], True, 0)
    n_terms = len(prepared.terms)
    everything = _any_of(range(n_terms))
    if min(prepared.chunks, sum(prepared.df)) <= EXACT_ROWS:
        matches = _score(connection, prepared, scope, conditions, everything, limit=limit)
        return Bm25Result(matches, True, _estimate(prepared, [[i] for i in range(n_terms)]))

    probe, probe_rows = _probe(connection, prepared, scope, conditions, limit)
    if len(probe) >= limit:
        threshold = probe[limit - 1].score
        combinations = _combinations(prepared, threshold)
        if combinations is not None:
            expected = _estimate(prepared, combinations)
            if expected <= PRUNED_ROWS:
                query = _any_of_all(combinations)
                matches = _score(connection, prepared, scope, conditions, query, limit=limit)
                return Bm25Result(matches, True, probe_rows + expected)
    return Bm25Result(probe[:limit], False, probe_rows)


def score_chunks(
    connection: Connection, prepared: Bm25Query, *, scope: Scope, chunk_ids: Iterable[str]
) -> dict[str, float]:
    """The BM25 score of each given chunk of the scope (0.0 without a query word).

    Hybrid search uses it for the passages only the dense side found."""
    wanted = list(dict.fromkeys(chunk_ids))
    scores = dict.fromkeys(wanted, 0.0)
    if not wanted or not prepared.terms:
        return scores
    matches = _score(
        connection,
        prepared,
        scope,
        [_chunks.c.chunk_id.in_(wanted)],
        tsquery=None,
        limit=len(wanted),
    )
    scores.update((m.chunk_id, m.score) for m in matches)
    return scores


def _probe(
    connection: Connection,
    prepared: Bm25Query,
    scope: Scope,
    conditions: Sequence[ColumnElement[bool]],
    limit: int,
) -> tuple[list[Bm25Match], int]:
    """Score a cheap set of strong candidates; their `limit` best set the threshold.

    First every chunk holding one of the rarest words, as many words as PRUNED_ROWS
    allows (a pasted paragraph's rare words find its source). While fewer than
    `limit` were found, the chunks holding the next m words together, for the
    largest m expected to give `limit` (common words: their intersections are the
    strong chunks), one word fewer at a time.
    """
    df = prepared.df
    found: dict[int, Bm25Match] = {}
    scored = 0
    rare = 0
    while rare < len(df) and sum(df[: rare + 1]) <= PRUNED_ROWS:
        rare += 1
    if rare:
        found.update(
            (m.id, m)
            for m in _score(
                connection, prepared, scope, conditions, _any_of(range(rare)), limit=limit
            )
        )
        scored += sum(df[:rare])
    words = min(len(df), rare + PRUNING_WORDS)
    if len(found) < limit and rare < len(df):
        expected = {
            m: _estimate(prepared, [list(range(rare, m))]) for m in range(rare + 1, words + 1)
        }
        m = next((m for m in range(words, rare, -1) if expected[m] >= limit), rare + 1)
        while True:
            cap = PRUNED_ROWS if expected[m] > PRUNED_ROWS else None
            matches = _score(
                connection,
                prepared,
                scope,
                conditions,
                _all_of(range(rare, m)),
                limit=limit,
                cap=cap,
            )
            found.update((match.id, match) for match in matches)
            scored += min(expected[m], PRUNED_ROWS)
            if len(found) >= limit or m == rare + 1:
                break
            m -= 1
    best = sorted(found.values(), key=lambda match: (-match.score, match.id))
    return best[:limit], scored


def _combinations(prepared: Bm25Query, threshold: float) -> list[list[int]] | None:
    """The minimal sets of words (indexes into `prepared.terms`) whose idf sum reaches
    `threshold`: a chunk that holds none of these sets scores below it. None when
    there are too many to list."""
    weights = prepared.idf
    n_terms = len(weights)
    # The most common words beyond PRUNING_WORDS join every set's budget instead of
    # being enumerated: a chunk may hold all of them.
    head = min(n_terms, PRUNING_WORDS)
    tail = sum(weights[head:])
    found: list[list[int]] = []

    def extend(chosen: list[int], total: float, start: int) -> bool:
        if total + tail >= threshold:
            found.append(list(chosen))
            return len(found) <= MAX_COMBINATIONS
        remaining = sum(weights[start:head])
        if total + tail + remaining < threshold:
            return True
        return all(extend([*chosen, i], total + weights[i], i + 1) for i in range(start, head))

    if tail >= threshold:
        return None  # every chunk might qualify through the unlisted words alone
    return found if extend([], 0.0, 0) else None


def _estimate(prepared: Bm25Query, combinations: Iterable[Sequence[int]]) -> int:
    """Expected chunks holding any of the word sets, words taken as independent."""
    n = max(prepared.chunks, 1)
    total = 0.0
    for combination in combinations:
        total += n * math.prod(prepared.df[i] / n for i in combination)
    return math.ceil(min(total, prepared.chunks))


def _lexeme(term: str) -> str:
    """A lexeme quoted for tsquery input, taken as it is (no parsing, no stemming)."""
    return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"


def _all_of(indexes: Iterable[int]) -> list[list[int]]:
    return [list(indexes)]


def _any_of(indexes: Iterable[int]) -> list[list[int]]:
    return [[i] for i in indexes]


def _any_of_all(combinations: Sequence[Sequence[int]]) -> list[list[int]]:
    return [list(c) for c in combinations]


def _tag(space_id: uuid.UUID) -> str:
    """The prefix of a space's words in the full-text index (`kb_scoped_lexemes`)."""
    return space_id.hex[:SPACE_TAG_LENGTH]


def _tsquery_text(prepared: Bm25Query, tag: str, combinations: Sequence[Sequence[int]]) -> str:
    """The word combinations (OR of ANDs) as a tsquery of one space's tagged words, as
    the index holds them: `kb_scoped_lexemes(space_id, text_tsv) @@ this` matches the
    space's chunks that hold one of the combinations."""
    return " | ".join(
        "(" + " & ".join(_lexeme(tag + prepared.terms[i]) for i in combination) + ")"
        for combination in combinations
    )


def _matching(
    prepared: Bm25Query, scope: Scope, combinations: Sequence[Sequence[int]]
) -> ColumnElement[bool] | None:
    """The scope's chunks holding one of the word combinations, one condition per space
    (None when nothing can match: no space, or no combination the index can hold).

    Each space gets its own tsquery, ORed, so the planner runs one small index scan per
    space and ORs the bitmaps. One tsquery listing every space's tagged words would be
    checked whole against each indexed row: with 128 combinations over 4 spaces, 330 ms
    instead of ~80 (measured on 16,000 chunks).

    Each condition carries its space (`space_id = s`), so together they are the scope's
    filter, and the search adds no `space_id IN (...)` of its own: with both, the
    planner multiplied their selectivities, expected about one row per space and read
    every readable chunk through the space index, computing `kb_scoped_lexemes` on each
    (1,300 spaces, three readable: 60 ms instead of 0.7).
    """
    # Words too long to carry a tag are not in the index (migration 0008).
    longest = LONGEST_WORD - SPACE_TAG_LENGTH
    indexable = [
        combination
        for combination in combinations
        if all(len(prepared.terms[i].encode()) <= longest for i in combination)
    ]
    if not indexable or not scope.space_ids:
        return None
    scoped = sa.func.kb_scoped_lexemes(_chunks.c.space_id, _chunks.c.text_tsv)
    return sa.or_(
        *(
            sa.and_(
                _chunks.c.space_id == space,
                scoped.op("@@")(
                    sa.cast(sa.literal(_tsquery_text(prepared, _tag(space), indexable)), TSQUERY)
                ),
            )
            for space in scope.space_ids
        )
    )


def _score(
    connection: Connection,
    prepared: Bm25Query,
    scope: Scope,
    conditions: Sequence[ColumnElement[bool]],
    tsquery: Sequence[Sequence[int]] | None,
    *,
    limit: int,
    cap: int | None = None,
) -> list[Bm25Match]:
    """Score the scope's chunks that match `tsquery` (word-index combinations, OR of
    ANDs) and the `conditions`; the `limit` best. `cap` bounds the rows read."""
    params = prepared.params
    filters: list[Any] = [*conditions]
    if tsquery is None:
        filters.append(scope.where(_chunks))
    else:
        # The per-space conditions name every space of the scope: they are its filter.
        matching = _matching(prepared, scope, tsquery)
        if matching is None:
            return []
        filters.append(matching)
    matched_select = sa.select(
        _chunks.c.id, _chunks.c.chunk_id, _chunks.c.text_tsv, _chunks.c.token_count
    ).where(*filters)
    if cap is not None:
        matched_select = matched_select.limit(cap)
    matched = matched_select.subquery("matched")
    terms = sa.cast(sa.literal(list(prepared.terms)), ARRAY(sa.Text))
    # Parenthesised: PostgreSQL subscripts a cast only inside parentheses.
    weights = Grouping(sa.cast(sa.literal(list(prepared.idf)), ARRAY(sa.Float)))
    # Only the query's lexemes of the chunk, with their positions: setweight marks
    # them (text_tsv's lexemes all carry the default weight D), ts_filter keeps the
    # marked ones. Both are C functions; unnesting the whole tsvector instead costs
    # ~4x more per row.
    mine = sa.func.ts_filter(
        sa.func.setweight(matched.c.text_tsv, sa.literal_column("'A'::\"char\""), terms),
        sa.literal_column("'{a}'::\"char\"[]"),
    )
    lexemes = sa.func.unnest(mine).table_valued("lexeme", "positions", "weights")
    tf = sa.cast(sa.func.coalesce(sa.func.array_length(lexemes.c.positions, 1), 1), sa.Float)
    weight = weights[sa.func.array_position(terms, lexemes.c.lexeme)]
    length = params.k1 * (
        1 - params.b + params.b * sa.cast(matched.c.token_count, sa.Float) / prepared.avg_length
    )
    # A chunk without any query word (possible in `score_chunks`) scores 0, not NULL.
    score = sa.func.coalesce(
        sa.select(sa.func.sum(weight * tf / (tf + length))).select_from(lexemes).scalar_subquery(),
        0.0,
    ).label("score")
    statement = (
        sa.select(matched.c.id, matched.c.chunk_id, score)
        .order_by(sa.desc("score"), matched.c.id)
        .limit(limit)
    )
    return [
        Bm25Match(id=int(row.id), chunk_id=str(row.chunk_id), score=float(row.score))
        for row in connection.execute(statement)
    ]
