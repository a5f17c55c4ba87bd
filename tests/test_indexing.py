"""Incremental, all-or-nothing, per-user indexing of sources (real PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.engine import Engine

from db.models import User
from db.scoped import user_scope
from ingest.indexing import IndexStats, delete_source
from ingest.record_manager import PgRecordManager
from retrieval.retriever import Retriever
from tests.conftest import personal_space
from tests.fakes import HashEmbeddings
from tests.ingest_fixtures import (
    FailingEmbeddings,
    chunk_snapshot,
    chunk_texts,
    file_documents,
    index_file,
    record_snapshot,
)

MakeUser = Callable[..., User]

V1 = (
    "Alpacas graze on the high plains.",
    "Llamas carry loads across the Andes.",
    "Vicunas have the finest wool.",
)
V2 = ("Alpacas graze on the high plains.", "Guanacos live in Patagonia.")


def test_first_index_adds_every_chunk_with_columns_and_metadata(
    engine: Engine, make_user: MakeUser, fake_embeddings: HashEmbeddings
) -> None:
    alice = make_user("alice")
    stats = index_file(
        engine,
        fake_embeddings,
        alice.id,
        "camelids.txt",
        file_documents("camelids.txt", *V1, page=2),
        source_url="kb://files/camelids.txt",
    )
    assert stats == IndexStats(added=3, updated=0, skipped=0, deleted=0)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT chunk_index, source_url, metadata, length(chunk_id) FROM document_chunks "
            "ORDER BY chunk_index"
        ).all()
    assert [r[0] for r in rows] == [0, 1, 2]
    assert {r[1] for r in rows} == {"kb://files/camelids.txt"}
    assert rows[0][2]["space_id"] == str(personal_space(engine, alice.id))
    assert rows[0][2]["page"] == 2 and rows[0][2]["title"] == "camelids.txt"
    assert {r[3] for r in rows} == {64}  # sha256 hex keys
    assert len(record_snapshot(engine, alice.id)) == 3


def test_reindexing_unchanged_source_writes_nothing_and_embeds_nothing(
    engine: Engine, make_user: MakeUser, fake_embeddings: HashEmbeddings
) -> None:
    alice = make_user("alice")
    docs = file_documents("camelids.txt", *V1)
    index_file(engine, fake_embeddings, alice.id, "camelids.txt", docs)
    chunks_before = chunk_snapshot(engine)
    calls_before = fake_embeddings.calls

    stats = index_file(engine, fake_embeddings, alice.id, "camelids.txt", docs)

    assert stats == IndexStats(added=0, updated=0, skipped=3, deleted=0)
    assert fake_embeddings.calls == calls_before
    assert chunk_snapshot(engine) == chunks_before


def test_changed_source_replaces_exactly_its_old_chunks(
    engine: Engine, make_user: MakeUser, fake_embeddings: HashEmbeddings
) -> None:
    alice = make_user("alice")
    for source in ("camelids.txt", "other.txt"):
        index_file(engine, fake_embeddings, alice.id, source, file_documents(source, *V1))
    other_before = [r for r in chunk_snapshot(engine) if r[2] == "other.txt"]

    stats = index_file(
        engine, fake_embeddings, alice.id, "camelids.txt", file_documents("camelids.txt", *V2)
    )

    # The first chunk is identical (same text, index and metadata): kept, not re-embedded.
    assert stats == IndexStats(added=1, updated=0, skipped=1, deleted=2)
    assert chunk_texts(engine, alice.id, "camelids.txt") == list(V2)
    assert [r for r in chunk_snapshot(engine) if r[2] == "other.txt"] == other_before
    groups = [r[3] for r in record_snapshot(engine, alice.id)]
    assert groups.count("file:camelids.txt") == 2 and groups.count("file:other.txt") == 3


def test_empty_documents_delete_the_source(
    engine: Engine, make_user: MakeUser, fake_embeddings: HashEmbeddings
) -> None:
    alice = make_user("alice")
    index_file(
        engine, fake_embeddings, alice.id, "camelids.txt", file_documents("camelids.txt", *V1)
    )
    stats = index_file(engine, fake_embeddings, alice.id, "camelids.txt", [])
    assert stats.deleted == 3
    assert chunk_snapshot(engine) == [] and record_snapshot(engine) == []


def test_deleting_a_source_removes_its_chunks_and_records_only(
    engine: Engine, make_user: MakeUser, fake_embeddings: HashEmbeddings
) -> None:
    alice = make_user("alice")
    for source in ("camelids.txt", "other.txt"):
        index_file(engine, fake_embeddings, alice.id, source, file_documents(source, *V1))

    removed = delete_source(
        engine=engine,
        user_id=alice.id,
        space_id=personal_space(engine, alice.id),
        source_id="camelids.txt",
    )

    assert removed == 3
    assert {r[2] for r in chunk_snapshot(engine)} == {"other.txt"}
    assert {r[3] for r in record_snapshot(engine)} == {"file:other.txt"}
    assert (
        delete_source(
            engine=engine,
            user_id=alice.id,
            space_id=personal_space(engine, alice.id),
            source_id="camelids.txt",
        )
        == 0
    )


async def test_failure_mid_source_leaves_previous_version_intact_and_searchable(
    engine: Engine, make_user: MakeUser, fake_embeddings: HashEmbeddings, retriever: Retriever
) -> None:
    alice = make_user("alice")
    index_file(
        engine, fake_embeddings, alice.id, "camelids.txt", file_documents("camelids.txt", *V1)
    )
    chunks_before, records_before = chunk_snapshot(engine), record_snapshot(engine)
    new_version = file_documents("camelids.txt", *[f"Rewritten paragraph {i}." for i in range(5)])

    with pytest.raises(RuntimeError, match="went away"):
        index_file(
            engine,
            FailingEmbeddings(fail_on_call=2),
            alice.id,
            "camelids.txt",
            new_version,
            batch_size=2,
        )

    assert chunk_snapshot(engine) == chunks_before
    assert record_snapshot(engine) == records_before
    best = await retriever.search(
        "Which animal carries loads across the Andes?", user_id=alice.id, k=1, mode="vector"
    )
    assert best[0].text == V1[1]


def test_one_embedding_call_per_batch(
    engine: Engine, make_user: MakeUser, fake_embeddings: HashEmbeddings
) -> None:
    alice = make_user("alice")
    docs = file_documents("many.txt", *[f"Paragraph number {i} about wool." for i in range(10)])
    index_file(engine, fake_embeddings, alice.id, "many.txt", docs, batch_size=4)
    assert fake_embeddings.calls == 3
    assert fake_embeddings.texts_embedded == 10


def test_user_b_ingesting_the_same_file_never_touches_user_a(
    engine: Engine, make_user: MakeUser, fake_embeddings: HashEmbeddings
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    index_file(
        engine, fake_embeddings, alice.id, "camelids.txt", file_documents("camelids.txt", *V1)
    )
    alice_chunks = chunk_snapshot(engine, alice.id)
    alice_records = record_snapshot(engine, alice.id)

    first = index_file(
        engine, fake_embeddings, bob.id, "camelids.txt", file_documents("camelids.txt", *V1)
    )
    changed = index_file(
        engine, fake_embeddings, bob.id, "camelids.txt", file_documents("camelids.txt", *V2)
    )
    delete_source(
        engine=engine,
        user_id=bob.id,
        space_id=personal_space(engine, bob.id),
        source_id="camelids.txt",
    )

    assert first.added == 3 and first.skipped == 0  # no sharing of keys across users
    assert changed.deleted == 2
    assert chunk_snapshot(engine, alice.id) == alice_chunks
    assert record_snapshot(engine, alice.id) == alice_records
    assert chunk_snapshot(engine, bob.id) == []


def test_record_manager_sees_only_its_spaces_namespace(
    engine: Engine, make_user: MakeUser, fake_embeddings: HashEmbeddings
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    index_file(
        engine, fake_embeddings, alice.id, "camelids.txt", file_documents("camelids.txt", *V1)
    )
    alice_keys = [r[1] for r in record_snapshot(engine, alice.id)]
    with user_scope(engine, bob.id) as conn:
        records = PgRecordManager(connection=conn, space_id=personal_space(engine, bob.id))
        assert records.list_keys() == []
        assert records.exists(alice_keys) == [False, False, False]
        records.delete_keys(alice_keys)
    assert len(record_snapshot(engine, alice.id)) == 3


def test_record_manager_lists_keys_by_time_and_group(engine: Engine, make_user: MakeUser) -> None:
    alice = make_user("alice")
    with user_scope(engine, alice.id) as conn:
        records = PgRecordManager(connection=conn, space_id=personal_space(engine, alice.id))
        records.update(["a", "b"], group_ids=["g1", "g2"])
        middle = records.get_time()
        records.update(["c"], group_ids=["g1"], time_at_least=middle)
        assert records.list_keys(group_ids=["g1"]) == ["a", "c"]
        assert records.list_keys(before=middle) == ["a", "b"]
        assert records.list_keys(after=middle) == ["c"]
        assert len(records.list_keys(limit=1)) == 1
        assert records.exists(["a", "z"]) == [True, False]
        records.delete_keys(["a"])
        assert records.list_keys() == ["b", "c"]


def test_chunks_deleted_behind_the_records_back_are_reembedded(
    engine: Engine, make_user: MakeUser, fake_embeddings: HashEmbeddings
) -> None:
    alice = make_user("alice")
    docs = file_documents("camelids.txt", *V1)
    index_file(engine, fake_embeddings, alice.id, "camelids.txt", docs)
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM document_chunks")

    stats = index_file(engine, fake_embeddings, alice.id, "camelids.txt", docs)

    assert stats.added == 3
    assert chunk_texts(engine, alice.id, "camelids.txt") == list(V1)
