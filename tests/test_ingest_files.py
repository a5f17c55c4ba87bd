"""Ingesting files end to end (loaders, splitting, indexing) on the real PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import Engine

from db.models import User
from ingest.files import IngestOptions, discover_files, ingest_file, ingest_paths
from tests.conftest import personal_space
from tests.fakes import HashEmbeddings
from tests.ingest_fixtures import FailingEmbeddings, chunk_snapshot, chunk_texts, record_snapshot

MakeUser = Callable[..., User]
OPTIONS = IngestOptions(chunk_size=200, chunk_overlap=20, batch_size=4)

NOTES = "\n\n".join(
    f"Paragraph {i}: alpacas and llamas share the pasture number {i}." for i in range(30)
)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_new_file_is_indexed_with_file_metadata(
    tmp_path: Path, engine: Engine, make_user: MakeUser, fake_embeddings: HashEmbeddings
) -> None:
    alice = make_user("alice")
    path = _write(tmp_path / "notes.txt", NOTES)

    result = ingest_file(
        path,
        engine=engine,
        embeddings=fake_embeddings,
        user_id=alice.id,
        space_id=personal_space(engine, alice.id),
        options=OPTIONS,
    )

    assert (result.status, result.source_id, result.error) == ("indexed", "notes.txt", None)
    assert result.chunks == result.added > 1 and result.deleted == 0
    with engine.connect() as conn:
        meta = conn.exec_driver_sql(
            "SELECT metadata FROM document_chunks WHERE chunk_index = 0"
        ).scalar_one()
    assert meta["source_type"] == "file" and meta["source_id"] == "notes.txt"
    assert meta["space_id"] == str(personal_space(engine, alice.id))
    assert len(meta["file_hash"]) == 64


def test_reingesting_unchanged_file_writes_nothing(
    tmp_path: Path, engine: Engine, make_user: MakeUser, fake_embeddings: HashEmbeddings
) -> None:
    alice = make_user("alice")
    path = _write(tmp_path / "notes.txt", NOTES)
    first = ingest_file(
        path,
        engine=engine,
        embeddings=fake_embeddings,
        user_id=alice.id,
        space_id=personal_space(engine, alice.id),
        options=OPTIONS,
    )
    chunks, records, calls = chunk_snapshot(engine), record_snapshot(engine), fake_embeddings.calls

    again = ingest_file(
        path,
        engine=engine,
        embeddings=fake_embeddings,
        user_id=alice.id,
        space_id=personal_space(engine, alice.id),
        options=OPTIONS,
    )

    assert (again.status, again.added, again.deleted) == ("unchanged", 0, 0)
    assert again.chunks == again.skipped == first.chunks
    assert fake_embeddings.calls == calls
    assert chunk_snapshot(engine) == chunks
    assert [r[:4] for r in record_snapshot(engine)] == [r[:4] for r in records]


def test_changed_file_replaces_exactly_its_old_chunks(
    tmp_path: Path, engine: Engine, make_user: MakeUser, fake_embeddings: HashEmbeddings
) -> None:
    alice = make_user("alice")
    path = _write(tmp_path / "notes.txt", NOTES)
    other = _write(tmp_path / "other.txt", "Vicunas live high in the Andes.")
    ingest_paths(
        [path, other],
        engine=engine,
        embeddings=fake_embeddings,
        user_id=alice.id,
        space_id=personal_space(engine, alice.id),
        options=OPTIONS,
    )
    other_rows = [r for r in chunk_snapshot(engine) if r[2] == "other.txt"]
    _write(path, "Guanacos are wild.\n\nThey live in Patagonia.")

    result = ingest_file(
        path,
        engine=engine,
        embeddings=fake_embeddings,
        user_id=alice.id,
        space_id=personal_space(engine, alice.id),
        options=OPTIONS,
    )

    assert result.status == "updated" and result.deleted > 0
    assert " ".join(chunk_texts(engine, alice.id, "notes.txt")).count("Guanacos") == 1
    assert "alpacas" not in " ".join(chunk_texts(engine, alice.id, "notes.txt"))
    assert [r for r in chunk_snapshot(engine) if r[2] == "other.txt"] == other_rows


def test_markdown_files_get_heading_paths(
    tmp_path: Path, engine: Engine, make_user: MakeUser, fake_embeddings: HashEmbeddings
) -> None:
    alice = make_user("alice")
    guide = "# Setup\n\nRead me.\n\n## Install\n\nRun the installer.\n"
    path = _write(tmp_path / "guide.md", guide)
    ingest_file(
        path,
        engine=engine,
        embeddings=fake_embeddings,
        user_id=alice.id,
        space_id=personal_space(engine, alice.id),
        options=OPTIONS,
    )
    with engine.connect() as conn:
        headings = (
            conn.exec_driver_sql(
                "SELECT metadata->>'headings' FROM document_chunks ORDER BY chunk_index"
            )
            .scalars()
            .all()
        )
    assert headings == ["Setup", "Setup > Install"]


def test_failure_mid_file_leaves_previous_version_intact(
    tmp_path: Path, engine: Engine, make_user: MakeUser, fake_embeddings: HashEmbeddings
) -> None:
    alice = make_user("alice")
    path = _write(tmp_path / "notes.txt", NOTES)
    ingest_file(
        path,
        engine=engine,
        embeddings=fake_embeddings,
        user_id=alice.id,
        space_id=personal_space(engine, alice.id),
        options=OPTIONS,
    )
    chunks, records = chunk_snapshot(engine), record_snapshot(engine)
    _write(path, NOTES.replace("alpacas", "vicunas"))

    result = ingest_file(
        path,
        engine=engine,
        embeddings=FailingEmbeddings(fail_on_call=2),
        user_id=alice.id,
        space_id=personal_space(engine, alice.id),
        options=OPTIONS,
    )

    assert result.status == "error"
    assert result.error is not None and result.error.startswith("notes.txt could not be indexed")
    assert "\n" not in result.error
    assert chunk_snapshot(engine) == chunks and record_snapshot(engine) == records


def test_bad_file_is_one_error_line_and_the_batch_goes_on(
    tmp_path: Path, engine: Engine, make_user: MakeUser, fake_embeddings: HashEmbeddings
) -> None:
    alice = make_user("alice")
    empty = _write(tmp_path / "empty.txt", "")
    good = _write(tmp_path / "good.txt", NOTES)
    (tmp_path / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n")

    results = ingest_paths(
        [empty, tmp_path / "picture.png", good],
        engine=engine,
        embeddings=fake_embeddings,
        user_id=alice.id,
        space_id=personal_space(engine, alice.id),
        options=OPTIONS,
    )

    assert [r.status for r in results] == ["error", "error", "indexed"]
    assert all(r.error and r.name in r.error and "\n" not in r.error for r in results[:2])
    assert {r[2] for r in chunk_snapshot(engine)} == {"good.txt"}


def test_size_limit_is_checked_before_parsing(
    tmp_path: Path, engine: Engine, make_user: MakeUser, fake_embeddings: HashEmbeddings
) -> None:
    alice = make_user("alice")
    # Not a valid PDF: only the size check can produce this message.
    big = tmp_path / "big.pdf"
    big.write_bytes(b"x" * 5000)
    result = ingest_file(
        big,
        engine=engine,
        embeddings=fake_embeddings,
        user_id=alice.id,
        space_id=personal_space(engine, alice.id),
        options=IngestOptions(max_bytes=4000),
    )
    assert result.status == "error"
    assert result.error is not None and "big.pdf" in result.error and "limit" in result.error
    assert chunk_snapshot(engine) == []


def test_file_that_became_empty_keeps_its_previous_version(
    tmp_path: Path, engine: Engine, make_user: MakeUser, fake_embeddings: HashEmbeddings
) -> None:
    alice = make_user("alice")
    path = _write(tmp_path / "notes.txt", NOTES)
    ingest_file(
        path,
        engine=engine,
        embeddings=fake_embeddings,
        user_id=alice.id,
        space_id=personal_space(engine, alice.id),
        options=OPTIONS,
    )
    chunks = chunk_snapshot(engine)
    _write(path, "   \n")
    result = ingest_file(
        path,
        engine=engine,
        embeddings=fake_embeddings,
        user_id=alice.id,
        space_id=personal_space(engine, alice.id),
        options=OPTIONS,
    )
    assert result.status == "error"
    assert chunk_snapshot(engine) == chunks


def test_same_file_for_two_users_is_indexed_separately(
    tmp_path: Path, engine: Engine, make_user: MakeUser, fake_embeddings: HashEmbeddings
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    path = _write(tmp_path / "notes.txt", NOTES)
    ingest_file(
        path,
        engine=engine,
        embeddings=fake_embeddings,
        user_id=alice.id,
        space_id=personal_space(engine, alice.id),
        options=OPTIONS,
    )
    alice_chunks = chunk_snapshot(engine, alice.id)
    alice_records = record_snapshot(engine, alice.id)

    bob_first = ingest_file(
        path,
        engine=engine,
        embeddings=fake_embeddings,
        user_id=bob.id,
        space_id=personal_space(engine, bob.id),
        options=OPTIONS,
    )
    _write(path, "Bob rewrote the notes entirely.")
    bob_second = ingest_file(
        path,
        engine=engine,
        embeddings=fake_embeddings,
        user_id=bob.id,
        space_id=personal_space(engine, bob.id),
        options=OPTIONS,
    )

    assert bob_first.status == "indexed" and bob_first.added == bob_first.chunks
    assert bob_second.status == "updated"
    assert chunk_snapshot(engine, alice.id) == alice_chunks
    assert record_snapshot(engine, alice.id) == alice_records
    assert chunk_texts(engine, bob.id, "notes.txt") == ["Bob rewrote the notes entirely."]


def test_folders_give_source_ids_relative_to_their_parent(tmp_path: Path) -> None:
    _write(tmp_path / "docs" / "a" / "notes.md", "# A")
    _write(tmp_path / "docs" / "b" / "notes.md", "# B")
    _write(tmp_path / "docs" / ".hidden" / "secret.md", "# hidden")
    (tmp_path / "docs" / "clip.mp4").write_bytes(b"\x00\x00")

    found = discover_files([tmp_path / "docs"])

    assert [f.source_id for f in found.files] == ["docs/a/notes.md", "docs/b/notes.md"]
    assert len(found.notes) == 1 and "clip.mp4" in found.notes[0]
    assert found.errors == []


def test_same_name_named_twice_is_an_error_not_an_overwrite(tmp_path: Path) -> None:
    a = _write(tmp_path / "a" / "notes.md", "# A")
    b = _write(tmp_path / "b" / "notes.md", "# B")
    found = discover_files([a, b, a])
    assert [f.path for f in found.files] == [a]
    assert len(found.errors) == 1 and "same name" in (found.errors[0].error or "")


def test_glob_patterns_are_expanded(tmp_path: Path) -> None:
    _write(tmp_path / "x" / "one.md", "# 1")
    _write(tmp_path / "x" / "two.txt", "2")
    found = discover_files([f"{tmp_path}/**/*.md", f"{tmp_path}/nothing-*.pdf"])
    assert [f.source_id for f in found.files] == ["one.md"]
    assert len(found.errors) == 1 and "matches no file" in (found.errors[0].error or "")


def test_a_batch_of_changed_files_is_embedded_in_one_model_call(
    tmp_path: Path, engine: Engine, make_user: MakeUser, fake_embeddings: HashEmbeddings
) -> None:
    alice = make_user("alice")
    for n in range(3):
        _write(tmp_path / "docs" / f"note-{n}.txt", f"Note {n}: alpacas hum number {n}.")

    first = ingest_paths(
        [tmp_path / "docs"],
        engine=engine,
        embeddings=fake_embeddings,
        user_id=alice.id,
        space_id=personal_space(engine, alice.id),
        options=OPTIONS,
    )
    assert [r.status for r in first] == ["indexed"] * 3
    assert (fake_embeddings.calls, fake_embeddings.texts_embedded) == (1, 3)

    _write(tmp_path / "docs" / "note-1.txt", "Note 1 was rewritten about llamas.")
    second = ingest_paths(
        [tmp_path / "docs"],
        engine=engine,
        embeddings=fake_embeddings,
        user_id=alice.id,
        space_id=personal_space(engine, alice.id),
        options=OPTIONS,
    )
    assert [r.status for r in second] == ["unchanged", "updated", "unchanged"]
    assert (fake_embeddings.calls, fake_embeddings.texts_embedded) == (2, 4)
    rewritten = chunk_texts(engine, alice.id, "docs/note-1.txt")
    assert rewritten == ["Note 1 was rewritten about llamas."]


def test_results_keep_the_order_of_the_files_given(
    tmp_path: Path, engine: Engine, make_user: MakeUser, fake_embeddings: HashEmbeddings
) -> None:
    alice = make_user("alice")
    good = _write(tmp_path / "good.txt", "Alpacas.")
    empty = _write(tmp_path / "empty.txt", "")
    also = _write(tmp_path / "also.md", "# Llamas")
    results = ingest_paths(
        [good, empty, also],
        engine=engine,
        embeddings=fake_embeddings,
        user_id=alice.id,
        space_id=personal_space(engine, alice.id),
        options=OPTIONS,
    )
    assert [r.source_id for r in results] == ["good.txt", "empty.txt", "also.md"]
    assert [r.status for r in results] == ["indexed", "error", "indexed"]


def test_when_embedding_ahead_fails_each_file_is_embedded_on_its_own(
    tmp_path: Path, engine: Engine, make_user: MakeUser
) -> None:
    alice = make_user("alice")
    for n in range(3):
        _write(tmp_path / "docs" / f"note-{n}.txt", f"Note {n}: alpacas hum number {n}.")
    embeddings = FailingEmbeddings(fail_on_call=1)  # the one call for the whole window

    results = ingest_paths(
        [tmp_path / "docs"],
        engine=engine,
        embeddings=embeddings,
        user_id=alice.id,
        space_id=personal_space(engine, alice.id),
        options=OPTIONS,
    )

    assert [r.status for r in results] == ["indexed"] * 3
    assert embeddings.calls == 4
    assert len(chunk_snapshot(engine, alice.id)) == 3
