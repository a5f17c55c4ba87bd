"""BM25 in PostgreSQL: exact scores, per-space statistics kept by triggers, pruning."""

from __future__ import annotations

import math
import threading
import uuid
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from db.chunks import delete_chunks, delete_source
from db.models import Space, SpaceMember
from db.scoped import user_scope
from retrieval import bm25
from retrieval.bm25 import Bm25Params, Scope
from tests.conftest import personal_space
from tests.fakes import HashEmbeddings, MakeUser
from tests.retrieval_fixtures import add_passages

# A tiny fixed corpus: (title, text). Titles are indexed with the text.
CORPUS = [
    ("Volcano", "Magma rises through the crust; magma erupts as lava, and lava cools."),
    ("Glacier", "Ice sheets carve valleys as the ice slowly flows downhill."),
    ("Tides", "The moon pulls the oceans; tides rise and fall twice a day."),
    ("Lava field", "Old lava covers the plain."),
    ("Deserts", "Wind carries sand; dunes migrate and the desert grows."),
    ("Ocean", "Oceans cover most of the planet, and the moon drives their tides."),
]
QUESTIONS = ["magma and lava", "moon tides oceans", "ice valleys desert", "lava"]


def lexemes(engine: Engine, text: str) -> list[str]:
    """PostgreSQL's own tokens (positions kept): the reference uses the same words."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT lexeme, array_length(positions, 1) FROM unnest(to_tsvector('english', :t))"
            ),
            {"t": text},
        )
        return [lexeme for lexeme, count in rows for _ in range(count or 1)]


def textbook_bm25(
    documents: list[list[str]], query: list[str], k1: float = 1.2, b: float = 0.75
) -> list[float]:
    """Lucene's BM25 written out, in float64."""
    n = len(documents)
    avgdl = sum(len(d) for d in documents) / n
    scores = []
    for document in documents:
        tf = Counter(document)
        score = 0.0
        for term in dict.fromkeys(query):
            df = sum(term in d for d in documents)
            if df == 0 or term not in tf:
                continue
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            score += idf * tf[term] / (tf[term] + k1 * (1 - b + b * len(document) / avgdl))
        scores.append(score)
    return scores


def readable(engine: Engine, user_id: uuid.UUID) -> Scope:
    """The spaces a user can read, as the retriever resolves them."""
    from db.spaces import readable_spaces

    with user_scope(engine, user_id) as connection:
        return Scope.of(s.id for s in readable_spaces(connection, user_id=user_id))


def all_scores(
    engine: Engine, user_id: uuid.UUID, question: str, **params: float
) -> dict[str, float]:
    scope = readable(engine, user_id)
    with user_scope(engine, user_id) as connection:
        prepared = bm25.prepare(
            connection, scope=scope, query=question, params=Bm25Params(**params)
        )
        result = bm25.top(connection, prepared, scope=scope, limit=100)
    assert result.exact
    return {m.chunk_id: m.score for m in result.matches}


@pytest.mark.parametrize("question", QUESTIONS)
def test_scores_equal_a_textbook_bm25_of_the_same_words(
    question: str, engine: Engine, make_user: MakeUser, fake_embeddings: HashEmbeddings
) -> None:
    alice = make_user("alice")
    ids = add_passages(engine, fake_embeddings, alice.id, CORPUS, prefix="c")
    documents = [lexemes(engine, f"{title} {text}") for title, text in CORPUS]
    reference = textbook_bm25(documents, lexemes(engine, question))
    found = all_scores(engine, alice.id, question)
    assert found  # every question has a word in the corpus
    for chunk_id, expected in zip(ids, reference, strict=True):
        assert found.get(chunk_id, 0.0) == pytest.approx(expected, abs=1e-6)


def test_scores_equal_bm25s_on_the_same_tokens(
    engine: Engine, make_user: MakeUser, fake_embeddings: HashEmbeddings
) -> None:
    bm25s = pytest.importorskip("bm25s")
    alice = make_user("alice")
    ids = add_passages(engine, fake_embeddings, alice.id, CORPUS, prefix="c")
    documents = [lexemes(engine, f"{title} {text}") for title, text in CORPUS]
    retriever = bm25s.BM25(k1=1.5, b=0.75, method="lucene", dtype="float64")
    retriever.index(documents, show_progress=False)
    for question in QUESTIONS:
        words = list(dict.fromkeys(lexemes(engine, question)))
        reference = retriever.get_scores(words)
        found = all_scores(engine, alice.id, question, k1=1.5, b=0.75)
        for chunk_id, expected in zip(ids, reference, strict=True):
            assert found.get(chunk_id, 0.0) == pytest.approx(float(expected), abs=1e-6)


def test_words_frequent_in_a_space_the_user_cannot_read_leave_their_idf_alone(
    engine: Engine, make_user: MakeUser, fake_embeddings: HashEmbeddings
) -> None:
    from sqlalchemy.orm import Session

    from db.models import User
    from db.spaces import add_member, create_space

    alice, bob = make_user("alice"), make_user("bob")
    add_passages(engine, fake_embeddings, alice.id, CORPUS, prefix="a")
    question = "lava moon"
    before = all_scores(engine, alice.id, question)
    # A space of Bob's full of "lava": a df shared across spaces would lower its idf
    # for Alice too.
    with Session(engine) as session:
        team = create_space(
            session=session, name="Geology", owner=session.get_one(User, bob.id), created_by=None
        )
        session.commit()
        team_id = team.id
    lava = [(f"Lava {i}", "lava lava lava") for i in range(40)]
    lava_ids = add_passages(engine, fake_embeddings, bob.id, lava, space_id=team_id, prefix="b")
    assert all_scores(engine, alice.id, question) == pytest.approx(before, abs=1e-9)
    with user_scope(engine, alice.id) as connection:
        prepared = bm25.prepare(connection, scope=readable(engine, alice.id), query=question)
        # Asking for Bob's space by id, as Alice: row-level security hides its statistics.
        forced = bm25.prepare(connection, scope=Scope.of([team_id]), query=question)
    assert prepared.chunks == len(CORPUS)
    assert dict(zip(prepared.terms, prepared.df, strict=True)) == {"lava": 2, "moon": 2}
    assert forced.terms == () and forced.chunks == 0
    # Once Alice may read the space, its chunks count in her statistics.
    with Session(engine) as session:
        add_member(
            session=session,
            space=session.get_one(type(team), team_id),
            user=session.get_one(User, alice.id),
            role="reader",
            added_by=None,
        )
        session.commit()
    with user_scope(engine, alice.id) as connection:
        joined = bm25.prepare(connection, scope=readable(engine, alice.id), query=question)
    assert joined.chunks == len(CORPUS) + 40
    assert dict(zip(joined.terms, joined.df, strict=True)) == {"lava": 42, "moon": 2}
    # Her search ranks both spaces' chunks together (one index condition per space),
    # each score that of a textbook BM25 over everything she reads.
    passages = CORPUS + lava
    documents = [lexemes(engine, f"{title} {text}") for title, text in passages]
    reference = textbook_bm25(documents, lexemes(engine, question))
    found = all_scores(engine, alice.id, question)
    assert len(found) == 44
    ids = [f"a-{i}" for i in range(len(CORPUS))] + lava_ids
    for chunk_id, expected in zip(ids, reference, strict=True):
        assert found.get(chunk_id, 0.0) == pytest.approx(expected, abs=1e-6)


def test_statistics_are_invisible_to_other_users_under_row_level_security(
    engine: Engine, make_user: MakeUser, fake_embeddings: HashEmbeddings
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    add_passages(engine, fake_embeddings, alice.id, CORPUS, prefix="a")
    with user_scope(engine, bob.id) as connection:
        # No WHERE clause: the policy alone hides Alice's rows.
        seen = connection.execute(sa.text("SELECT count(*) FROM bm25_term_stats")).scalar()
        # A scope naming Alice's space, run as Bob, finds no statistics and no chunk.
        alices = Scope.of([personal_space(engine, alice.id)])
        prepared = bm25.prepare(connection, scope=alices, query="lava")
    assert seen == 0
    assert prepared.terms == () and prepared.chunks == 0


def stats_of(engine: Engine, user_id: uuid.UUID) -> dict[str, tuple[int, int]]:
    """The statistics of a user's personal space, as the triggers keep them."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT term, sum(chunks), sum(tokens) FROM bm25_term_stats"
                " WHERE space_id = :s GROUP BY term HAVING sum(chunks) <> 0 OR sum(tokens) <> 0"
            ),
            {"s": personal_space(engine, user_id)},
        )
        return {term: (int(c), int(t)) for term, c, t in rows}


def recount(engine: Engine, user_id: uuid.UUID) -> dict[str, tuple[int, int]]:
    """The statistics counted from scratch over the chunks of a user's personal space."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT t.term, count(*), sum(t.tokens) FROM document_chunks AS c,"
                " kb_bm25_terms(c.text_tsv, c.token_count) AS t"
                " WHERE c.space_id = :s GROUP BY t.term"
            ),
            {"s": personal_space(engine, user_id)},
        )
        return {term: (int(c), int(t)) for term, c, t in rows}


def test_statistics_follow_inserts_updates_and_deletes(
    engine: Engine, make_user: MakeUser, fake_embeddings: HashEmbeddings
) -> None:
    alice = make_user("alice")
    ids = add_passages(engine, fake_embeddings, alice.id, CORPUS, prefix="a")
    assert stats_of(engine, alice.id) == recount(engine, alice.id)
    assert stats_of(engine, alice.id)[""][0] == len(CORPUS)
    # Re-writing a chunk with new text (an upsert) moves its words.
    add_passages(engine, fake_embeddings, alice.id, [("Volcano", "Basalt only.")], prefix="a")
    assert stats_of(engine, alice.id) == recount(engine, alice.id)
    assert "magma" not in stats_of(engine, alice.id)
    with user_scope(engine, alice.id) as connection:
        space = personal_space(engine, alice.id)
        delete_chunks(connection, space_id=space, chunk_ids=ids[1:3])
        delete_source(connection, space_id=space, source_id="Deserts.md")
    assert stats_of(engine, alice.id) == recount(engine, alice.id)
    assert stats_of(engine, alice.id)[""][0] == len(CORPUS) - 3


def test_folding_merges_each_keys_delta_rows_into_one(
    engine: Engine, make_user: MakeUser, fake_embeddings: HashEmbeddings
) -> None:
    alice = make_user("alice")
    for i in range(5):
        add_passages(engine, fake_embeddings, alice.id, CORPUS, prefix=f"batch{i}")
    before = stats_of(engine, alice.id)
    space = personal_space(engine, alice.id)
    with user_scope(engine, alice.id) as connection:
        connection.execute(sa.text("SELECT kb_bm25_stats_compact(:s)"), {"s": space})
    with engine.connect() as connection:
        most = connection.execute(
            sa.text(
                "SELECT max(n) FROM (SELECT count(*) AS n FROM bm25_term_stats"
                " GROUP BY space_id, term) AS keys"
            )
        ).scalar()
    assert most == 1
    assert stats_of(engine, alice.id) == before == recount(engine, alice.id)
    assert before[""][0] == 5 * len(CORPUS)


def test_deleting_a_space_takes_its_statistics_along(
    engine: Engine, make_user: MakeUser, fake_embeddings: HashEmbeddings
) -> None:
    alice = make_user("alice")
    add_passages(engine, fake_embeddings, alice.id, CORPUS, prefix="a")
    with engine.begin() as connection:
        connection.execute(
            sa.text("DELETE FROM spaces WHERE id = :s"), {"s": personal_space(engine, alice.id)}
        )
        left = connection.execute(sa.text("SELECT count(*) FROM bm25_term_stats")).scalar()
    assert left == 0


def test_concurrent_writers_of_one_user_neither_wait_nor_lose_counts(
    engine: Engine, make_user: MakeUser, fake_embeddings: HashEmbeddings
) -> None:
    alice = make_user("alice")
    add_passages(engine, fake_embeddings, alice.id, CORPUS, prefix="base")
    space = personal_space(engine, alice.id)
    # Two open transactions write chunks with the same words and fold them; the first
    # commits only after the second has written, folded and committed: a row locked
    # by the first would block the second forever (the test would hang), and a fold
    # that lost or doubled a delta would leave the counts wrong.
    first_wrote, second_done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with user_scope(engine, alice.id) as connection:
                from db.chunks import ChunkRow, insert_chunks

                insert_chunks(
                    connection,
                    [
                        ChunkRow(
                            chunk_id="first",
                            space_id=space,
                            added_by=alice.id,
                            text="lava and magma and ice",
                            embedding=fake_embeddings.embed_query("x"),
                            source_type="file",
                            source_id="first.md",
                        )
                    ],
                )
                # Folding now locks (until commit) the rows of every key of Alice.
                connection.execute(sa.text("SELECT kb_bm25_stats_compact(:s)"), {"s": space})
                first_wrote.set()
                assert second_done.wait(60)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
            first_wrote.set()

    thread = threading.Thread(target=first)
    thread.start()
    assert first_wrote.wait(60)
    add_passages(engine, fake_embeddings, alice.id, CORPUS, prefix="second")
    with user_scope(engine, alice.id) as connection:
        connection.execute(sa.text("SELECT kb_bm25_stats_compact(:s)"), {"s": space})
    second_done.set()
    thread.join()
    assert not errors
    assert stats_of(engine, alice.id) == recount(engine, alice.id)
    # Folding what the concurrent writes left apart keeps the counts.
    with user_scope(engine, alice.id) as connection:
        connection.execute(sa.text("SELECT kb_bm25_stats_compact(:s)"), {"s": space})
    assert stats_of(engine, alice.id) == recount(engine, alice.id)


NATO = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]


def notes() -> list[tuple[str, str]]:
    """300 chunks holding overlapping sets of eight words, repeated 1-3 times."""
    passages = []
    for i in range(300):
        chosen = [w for j, w in enumerate(NATO) if (i >> j) & 1 or (i * 7 + j) % 5 == 0]
        passages.append((f"Note {i}", " ".join(chosen * (1 + i % 3)) + f" filler{i}"))
    return passages


def pruned_top(
    engine: Engine, user_id: uuid.UUID, question: str, monkeypatch: pytest.MonkeyPatch
) -> bm25.Bm25Result:
    # Force the pruning path: scoring every match is "too expensive" here.
    monkeypatch.setattr(bm25, "EXACT_ROWS", 10)
    monkeypatch.setattr(bm25, "PRUNED_ROWS", 250)
    scope = readable(engine, user_id)
    with user_scope(engine, user_id) as connection:
        prepared = bm25.prepare(connection, scope=scope, query=question)
        return bm25.top(connection, prepared, scope=scope, limit=10)


def test_pruned_search_returns_the_best_scores_on_a_large_scope(
    engine: Engine,
    make_user: MakeUser,
    fake_embeddings: HashEmbeddings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    carol = make_user("carol")
    add_passages(engine, fake_embeddings, carol.id, notes(), prefix="n")
    question = "alpha charlie golf hotel"
    exact = all_scores(engine, carol.id, question)
    best = sorted(exact.values(), reverse=True)[:10]
    result = pruned_top(engine, carol.id, question, monkeypatch)
    assert result.exact
    # The same ten best scores (ties may come in another order), each one exact.
    assert [m.score for m in result.matches] == pytest.approx(best, abs=1e-9)
    assert all(exact[m.chunk_id] == pytest.approx(m.score) for m in result.matches)


def test_a_long_pruned_question_still_fills_its_list_from_its_rare_words(
    engine: Engine,
    make_user: MakeUser,
    fake_embeddings: HashEmbeddings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    carol = make_user("carol")
    add_passages(engine, fake_embeddings, carol.id, notes(), prefix="n")
    question = "filler7 " + " ".join(NATO)
    exact = all_scores(engine, carol.id, question)
    best = sorted(exact, key=lambda chunk: -exact[chunk])[:10]
    result = pruned_top(engine, carol.id, question, monkeypatch)
    # Too many word combinations to prove the list exact within the budget: the best
    # of the candidates found, a full list, led by the chunk with the rare word.
    found = [m.chunk_id for m in result.matches]
    assert len(found) == 10 and found[0] == "n-7" == best[0]
    assert all(exact[m.chunk_id] == pytest.approx(m.score) for m in result.matches)
    assert len(set(found) & set(best)) >= 7


def scoring_statements(engine: Engine) -> list[tuple[str, Any]]:
    """The BM25 scoring statements run on `engine` from now on, with their parameters
    (appended as they run)."""
    seen: list[tuple[str, Any]] = []

    def record(conn: object, cursor: object, statement: str, parameters: Any, *_: object) -> None:
        if "ts_filter" in statement:
            seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", record)
    return seen


def test_the_search_finds_its_chunks_through_the_per_space_index_under_row_level_security(
    engine: Engine, make_user: MakeUser, fake_embeddings: HashEmbeddings
) -> None:
    dave = make_user("dave")
    filler = [(f"Note {i}", f"Routine entry number {i} about nothing much.") for i in range(400)]
    add_passages(engine, fake_embeddings, dave.id, [*filler, ("Kettle", "Descale the kettle.")])
    with engine.begin() as connection:
        connection.execute(sa.text("ANALYZE document_chunks"))
    seen = scoring_statements(engine)
    scope = readable(engine, dave.id)
    with user_scope(engine, dave.id) as connection:
        prepared = bm25.prepare(connection, scope=scope, query="kettle")
        result = bm25.top(connection, prepared, scope=scope, limit=5)
        assert [m.chunk_id for m in result.matches] == [f"{str(dave.id)[:8]}-400"]
        statement, parameters = seen[-1]
        plan = connection.exec_driver_sql("EXPLAIN " + statement, parameters).scalars()
        # RLS admits only leakproof functions in index conditions; migrations 0001 and
        # 0008 mark `@@` and `kb_scoped_lexemes` so, or every chunk would be read.
        assert "Bitmap Index Scan on document_chunks_scoped_text_gin" in "\n".join(plan)


def test_the_index_tags_each_word_with_its_space_as_the_search_does(
    engine: Engine, make_user: MakeUser
) -> None:
    space = personal_space(engine, make_user("erin").id)
    with engine.connect() as connection:
        lexemes = connection.execute(
            sa.text("SELECT tsvector_to_array(kb_scoped_lexemes(:s, to_tsvector('english', :t)))"),
            {"s": space, "t": "Lava flows"},
        ).scalar_one()
    assert sorted(lexemes) == [bm25._tag(space) + "flow", bm25._tag(space) + "lava"]


def test_spaces_whose_tags_collide_still_keep_their_chunks_apart(
    engine: Engine, make_user: MakeUser, fake_embeddings: HashEmbeddings
) -> None:
    erin, frank = make_user("erin"), make_user("frank")
    erin_space = personal_space(engine, erin.id)
    # A space of Frank's whose id starts like Erin's: the same words in the index.
    twin = uuid.UUID(erin_space.hex[: bm25.SPACE_TAG_LENGTH] + uuid.uuid4().hex[12:])
    with Session(engine) as session:
        session.add(Space(id=twin, name="Twin", kind="shared", created_by=frank.id))
        session.flush()
        session.add(SpaceMember(space_id=twin, user_id=frank.id, role="owner", added_by=frank.id))
        session.commit()
    assert bm25._tag(twin) == bm25._tag(erin_space)
    add_passages(
        engine,
        fake_embeddings,
        frank.id,
        [("Lava", "Lava, lava and more lava.")] * 3,
        space_id=twin,
        prefix="frank",
    )
    add_passages(engine, fake_embeddings, erin.id, [("Note", "The lava cooled.")], prefix="erin")
    assert set(all_scores(engine, erin.id, "lava")) == {"erin-0"}
    assert set(all_scores(engine, frank.id, "lava")) == {"frank-0", "frank-1", "frank-2"}


def test_chunks_scored_by_id_include_those_without_any_query_word(
    engine: Engine, make_user: MakeUser, fake_embeddings: HashEmbeddings
) -> None:
    alice = make_user("alice")
    ids = add_passages(engine, fake_embeddings, alice.id, CORPUS, prefix="c")
    scope = readable(engine, alice.id)
    with user_scope(engine, alice.id) as connection:
        prepared = bm25.prepare(connection, scope=scope, query="lava")
        scores = bm25.score_chunks(connection, prepared, scope=scope, chunk_ids=ids)
    expected = all_scores(engine, alice.id, "lava")
    assert scores == pytest.approx({i: expected.get(i, 0.0) for i in ids})
    assert scores[ids[1]] == 0.0 and scores[ids[0]] > 0 and scores[ids[3]] > 0


def test_upgrading_a_database_with_chunks_fills_lengths_and_statistics(
    pg_admin_url: str, fake_embeddings: HashEmbeddings
) -> None:
    from alembic import command

    from db.engine import PoolConfig, make_engine
    from db.schema import alembic_config, upgrade_to_head
    from db.spaces import personal_space_id
    from db.users import add_user
    from tests.conftest import create_database, drop_database

    url = create_database(pg_admin_url, template="postgres", prefix="kb_upgrade")
    engine = make_engine(url, PoolConfig(pool_size=2, max_overflow=0))
    try:
        config = alembic_config(embedding_dimension=384)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0006")
        with engine.begin() as connection:
            from sqlalchemy.orm import Session

            with Session(bind=connection) as session:
                user_id = add_user(session=session, identifier="old").id
                session.flush()
                space_id = personal_space_id(session, user_id=user_id)
            vector = "[" + ",".join(["0.1"] * 384) + "]"
            for i, (title, text) in enumerate(CORPUS):
                connection.execute(
                    sa.text(
                        "INSERT INTO document_chunks (chunk_id, space_id, text, metadata,"
                        " source_type, source_id, embedding)"
                        " VALUES (:c, :u, :t, CAST(:m AS jsonb), 'file', :s, CAST(:v AS vector))"
                    ),
                    {
                        "c": f"old-{i}",
                        "u": space_id,
                        "t": text,
                        "m": f'{{"title": "{title}"}}',
                        "s": f"{title}.md",
                        "v": vector,
                    },
                )
        upgrade_to_head(engine, embedding_dimension=384)
        assert stats_of(engine, user_id) == recount(engine, user_id)
        with engine.connect() as connection:
            lengths = connection.execute(
                sa.text("SELECT token_count, kb_token_count(text_tsv) FROM document_chunks")
            ).all()
        assert len(lengths) == len(CORPUS) and all(a == b > 0 for a, b in lengths)
        # Writes after the upgrade keep the tsvector and the statistics up to date.
        with user_scope(engine, user_id) as connection:
            connection.execute(
                sa.text("UPDATE document_chunks SET text = 'lava lava' WHERE chunk_id = 'old-0'")
            )
            tsv = connection.execute(
                sa.text("SELECT text_tsv::text FROM document_chunks WHERE chunk_id = 'old-0'")
            ).scalar()
        assert tsv == "'lava':2,3 'volcano':1"
        assert stats_of(engine, user_id) == recount(engine, user_id)

        # Down to before the statistics and the row storage, and up again: no chunk
        # lost, the statistics rebuilt, the vectors and lexemes kept in the row.
        for revision, storage in (("0006", "m"), ("0004", None)):
            with engine.begin() as connection:
                config.attributes["connection"] = connection
                command.downgrade(config, revision)
            with engine.connect() as connection:
                assert _storage(connection) == (
                    {"embedding": "m", "text_tsv": "m"}
                    if storage
                    else {"embedding": "e", "text_tsv": "x"}
                )
        upgrade_to_head(engine, embedding_dimension=384)
        with engine.connect() as connection:
            assert _storage(connection) == {"embedding": "m", "text_tsv": "m"}
            chunks = connection.execute(sa.text("SELECT count(*) FROM document_chunks")).scalar()
        assert chunks == len(CORPUS)
        assert stats_of(engine, user_id) == recount(engine, user_id) != {}
        # The chunks written before 0008 are in its per-space full-text index.
        assert set(all_scores(engine, user_id, "lava")) == {"old-0", "old-3"}
    finally:
        engine.dispose()
        drop_database(pg_admin_url, url)


def _storage(connection: sa.Connection) -> dict[str, str]:
    """pg_attribute.attstorage of the chunk vector and lexemes (e external, x extended,
    m main)."""
    rows = connection.execute(
        sa.text(
            "SELECT attname, attstorage FROM pg_attribute WHERE attrelid ="
            " 'document_chunks'::regclass AND attname IN ('embedding', 'text_tsv')"
        )
    )
    return {name: str(storage) for name, storage in rows}


def test_each_readable_space_is_named_once_in_the_search_of_several(
    engine: Engine, make_user: MakeUser, fake_embeddings: HashEmbeddings
) -> None:
    """The per-space index conditions are the scope's filter. A `space_id IN (...)` next
    to them made the planner multiply both selectivities, expect about one row per
    space among many and tag every readable chunk one by one instead of using the
    index (spaces bench: 1,300 spaces, three readable, 60 ms instead of 0.7)."""
    from sqlalchemy.orm import Session

    from db.models import User
    from db.spaces import create_space

    erin = make_user("erin")
    with Session(engine) as session:
        owner = session.get_one(User, erin.id)
        spaces = [
            create_space(session=session, name=f"Team {i}", owner=owner, created_by=None)
            for i in range(3)
        ]
        session.commit()
        space_ids = [s.id for s in spaces]
    for i, space_id in enumerate(space_ids):
        entries = [(f"Log {i}", f"The kettle of team {i} was descaled.")]
        add_passages(engine, fake_embeddings, erin.id, entries, space_id=space_id, prefix=f"t{i}")
    seen = scoring_statements(engine)
    scope = Scope.of(space_ids)
    with user_scope(engine, erin.id) as connection:
        prepared = bm25.prepare(connection, scope=scope, query="kettle")
        result = bm25.top(connection, prepared, scope=scope, limit=5)
    assert sorted(m.chunk_id for m in result.matches) == ["t0-0", "t1-0", "t2-0"]
    _, parameters = seen[-1]
    named = [value for value in parameters.values() if value in space_ids]
    assert sorted(map(str, named)) == sorted(map(str, space_ids))
