"""load_file: PDFs, and the refusals and metadata common to every format.

Pure tests (no database): each builds its files at test time with tests/doc_factory.py.
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest

from db.errors import KbError
from ingest.errors import (
    CorruptFile,
    EmptyFile,
    EncryptedFile,
    FileTooLarge,
    IngestError,
    NoExtractableText,
    UnreadableFile,
    UnsupportedFile,
)
from ingest.loaders import SUPPORTED_EXTENSIONS, LoadOptions, load_file
from ingest.loaders.options import OcrOptions
from tests import doc_factory as make
from tests.doc_factory import refusal

PAGES = [
    "Alpha page: the pump runs at 40 bar.",
    "Beta page: the valve opens at noon.",
    "Gamma page: the gasket is rubber.",
]


# --- PDF ----------------------------------------------------------------------------


def test_pdf_gives_one_document_per_page_with_1_based_page_numbers(tmp_path: Path) -> None:
    documents = load_file(make.write_pdf(tmp_path / "manual.pdf", PAGES))

    assert [d.page_content for d in documents] == PAGES
    assert [d.metadata["page"] for d in documents] == [1, 2, 3]
    assert all(d.metadata["pages"] == 3 for d in documents)
    assert all("page_label" not in d.metadata for d in documents)


def test_pdf_printed_page_labels_are_kept_where_they_differ_from_the_number(
    tmp_path: Path,
) -> None:
    path = make.write_pdf_with_roman_front_matter(tmp_path / "book.pdf", PAGES, roman=2)

    documents = load_file(path)

    assert [d.metadata["page"] for d in documents] == [1, 2, 3]
    assert [d.metadata.get("page_label") for d in documents] == ["i", "ii", "1"]


def test_pdf_metadata_names_the_file_its_title_hash_and_format(tmp_path: Path) -> None:
    path = make.write_pdf(tmp_path / "manual.pdf", PAGES, title="Pump Manual")

    metadata = load_file(path)[0].metadata

    assert metadata["title"] == "Pump Manual"
    assert metadata["source_type"] == "file"
    assert metadata["source_id"] == "manual.pdf"
    assert metadata["file_name"] == "manual.pdf"
    assert metadata["mime"] == "application/pdf"
    assert metadata["format"] == "pdf"
    assert metadata["file_hash"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert "user_id" not in metadata


def test_pdf_without_a_title_is_titled_by_its_file_name(tmp_path: Path) -> None:
    documents = load_file(make.write_pdf(tmp_path / "notes.pdf", PAGES[:1]))

    assert documents[0].metadata["title"] == "notes.pdf"


def test_display_name_becomes_the_source_and_picks_the_format(tmp_path: Path) -> None:
    stored = make.write_pdf(tmp_path / "upload-7f3a", PAGES[:1])

    metadata = load_file(stored, display_name="Q3 Report.pdf")[0].metadata

    assert metadata["source_id"] == "Q3 Report.pdf"
    assert metadata["file_name"] == "Q3 Report.pdf"
    assert metadata["title"] == "Q3 Report.pdf"
    assert metadata["format"] == "pdf"


def test_display_name_with_folders_keeps_the_path_as_source_and_the_name_as_file(
    tmp_path: Path,
) -> None:
    stored = make.write_text(tmp_path / "upload-1", "hello")

    metadata = load_file(stored, display_name="notes/2024/todo.txt")[0].metadata

    assert metadata["source_id"] == "notes/2024/todo.txt"
    assert metadata["file_name"] == metadata["title"] == "todo.txt"


def test_upper_case_extension_is_recognised(tmp_path: Path) -> None:
    documents = load_file(make.write_pdf(tmp_path / "SCAN.PDF", PAGES[:1]))

    assert documents[0].metadata["format"] == "pdf"


def test_pdf_title_that_is_really_a_file_name_is_ignored(tmp_path: Path) -> None:
    path = make.write_pdf(tmp_path / "minutes.pdf", PAGES[:1], title="Microsoft Word - draft3.docx")

    assert load_file(path)[0].metadata["title"] == "minutes.pdf"


def test_pdf_page_without_text_is_skipped_and_the_others_keep_their_numbers(
    tmp_path: Path,
) -> None:
    path = make.write_pdf(tmp_path / "mixed.pdf", [PAGES[0], None, PAGES[2]])

    documents = load_file(path)

    assert [d.metadata["page"] for d in documents] == [1, 3]
    assert documents[0].metadata["pages_without_text"] == 1


def test_pdf_needing_a_password_to_open_is_refused_as_encrypted(tmp_path: Path) -> None:
    path = make.write_encrypted_pdf(tmp_path / "report.pdf", PAGES, user_password="open-me")

    error = refusal(path)

    assert isinstance(error, EncryptedFile)
    assert str(error) == (
        "report.pdf is password-protected. Remove the password (or export an unprotected "
        "copy) and upload it again."
    )


def test_pdf_with_only_an_owner_password_is_ingested_like_any_other(tmp_path: Path) -> None:
    # Rule: it opens in every viewer without a password, so its text is not a secret.
    path = make.write_encrypted_pdf(tmp_path / "print-only.pdf", PAGES, user_password="")

    documents = load_file(path)

    assert [d.page_content for d in documents] == PAGES


def test_image_only_pdf_asks_for_ocr_when_ocr_is_off(tmp_path: Path) -> None:
    path = make.write_image_only_pdf(tmp_path / "scan.pdf", pages=2)

    error = refusal(path, options=LoadOptions(ocr=OcrOptions(enabled=False)))

    assert isinstance(error, NoExtractableText)
    assert error.message == "scan.pdf has no text layer: this looks like a scan; OCR it first."
    assert error.hint is not None and "OCR" in error.hint


def test_truncated_pdf_is_reported_corrupt(tmp_path: Path) -> None:
    path = make.write_truncated(tmp_path / "cut.pdf", make.pdf_bytes(PAGES), keep=0.4)

    error = refusal(path)

    assert isinstance(error, CorruptFile)
    assert error.message.startswith("cut.pdf is not a readable PDF (truncated or damaged")
    assert error.hint is not None and "save or export it again" in error.hint


def test_html_saved_as_pdf_is_refused_with_its_real_type(tmp_path: Path) -> None:
    path = make.write_text(tmp_path / "page.pdf", "<!DOCTYPE html><html><body>Hi</body></html>")

    error = refusal(path)

    assert isinstance(error, UnsupportedFile)
    assert str(error) == (
        "page.pdf is not a PDF: its content is an HTML page. "
        "Rename it to page.html and upload it again."
    )


def test_bytes_of_no_known_format_named_pdf_are_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "noise.pdf"
    path.write_bytes(bytes(range(1, 256)) * 4)

    error = refusal(path)

    assert isinstance(error, CorruptFile)
    assert error.message == "noise.pdf is not a valid PDF: its bytes match no known format."


# --- Refusals common to every format ------------------------------------------------


@pytest.mark.parametrize("name", ["empty.pdf", "empty.docx", "empty.txt", "empty.csv"])
def test_zero_byte_file_is_empty(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"")

    error = refusal(path)

    assert isinstance(error, EmptyFile)
    assert str(error) == (
        f"{name} is empty (0 bytes). Check that you picked the right file, then upload it again."
    )


def test_whitespace_only_file_is_empty(tmp_path: Path) -> None:
    error = refusal(make.write_text(tmp_path / "blank.md", " \n\t\r\n  "))

    assert isinstance(error, EmptyFile)
    assert error.message == "blank.md is empty (only whitespace)."


def test_unknown_extension_is_refused_listing_the_supported_types(tmp_path: Path) -> None:
    path = make.write_text(tmp_path / "slides.ppt", "whatever")

    error = refusal(path)

    assert isinstance(error, UnsupportedFile)
    assert error.message == "slides.ppt is not a supported file type (.ppt)."
    assert error.hint is not None
    assert error.hint.startswith(
        "Save it as .pptx (or export a PDF) and upload that. Supported types: "
    )
    for extension in (".pdf", ".docx", ".pptx", ".xlsx", ".epub", ".eml", ".png", ".csv"):
        assert extension in error.hint


def test_file_without_an_extension_is_refused(tmp_path: Path) -> None:
    error = refusal(make.write_text(tmp_path / "README", "hello"))

    assert isinstance(error, UnsupportedFile)
    assert error.message == "README is not a supported file type (it has no extension)."


def test_file_over_the_limit_is_refused_before_its_content_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make.write_pdf(tmp_path / "big.pdf", PAGES)
    limit = path.stat().st_size - 1

    def no_reading(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("the content was read")

    monkeypatch.setattr(Path, "read_bytes", no_reading)
    monkeypatch.setattr(Path, "open", no_reading)
    error = refusal(path, max_bytes=limit)

    assert isinstance(error, FileTooLarge)
    assert error.message.startswith("big.pdf is ")
    assert error.message.endswith(f"over the {limit / 1024:.1f} KB limit.")


def test_file_at_the_limit_is_accepted(tmp_path: Path) -> None:
    path = make.write_pdf(tmp_path / "fits.pdf", PAGES)

    assert len(load_file(path, max_bytes=path.stat().st_size)) == 3


def test_missing_file_is_unreadable(tmp_path: Path) -> None:
    error = refusal(tmp_path / "gone.txt")

    assert isinstance(error, UnreadableFile)
    assert error.message == "gone.txt was not found."


def test_every_refusal_is_a_kb_error_naming_the_file_with_a_hint(tmp_path: Path) -> None:
    cases = [
        make.write_encrypted_pdf(tmp_path / "a.pdf", PAGES, user_password="x"),
        make.write_image_only_pdf(tmp_path / "b.pdf"),
        make.write_truncated(tmp_path / "c.pdf", make.pdf_bytes(PAGES)),
        make.write_text(tmp_path / "d.txt", ""),
        make.write_text(tmp_path / "e.xyz", "x"),
        make.write_text(tmp_path / "f.json", "{"),
        make.write_images_only_docx(tmp_path / "g.docx"),
    ]
    for path in cases:
        error = refusal(path)
        assert isinstance(error, KbError)
        assert error.file_name == path.name
        assert error.message.startswith(path.name + " ")
        assert error.hint


def damaged_copies(data: bytes, seed: int, count: int) -> list[bytes]:
    """Deterministic truncations, byte flips and cut-out runs of `data`."""
    rng = random.Random(seed)
    copies = []
    for index in range(count):
        damaged = bytearray(data)
        if index % 3 == 0:
            damaged = damaged[: rng.randrange(1, len(damaged))]
        elif index % 3 == 1:
            for _ in range(rng.randrange(1, 20)):
                damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        else:
            start = rng.randrange(len(damaged))
            del damaged[start : start + rng.randrange(1, 200)]
        copies.append(bytes(damaged))
    return copies


@pytest.mark.parametrize("name", ["a.pdf", "b.docx", "c.html", "d.csv", "e.json", "f.md"])
def test_damaged_files_fail_with_an_ingest_error_never_a_crash(tmp_path: Path, name: str) -> None:
    seeds = {
        "a.pdf": lambda p: make.write_pdf(p, [PAGES[0] * 10, None, PAGES[1]]),
        "b.docx": make.write_docx,
        "c.html": make.write_html,
        "d.csv": make.write_csv,
        "e.json": lambda p: make.write_json(p, {"a": [{"b": 1}, {"c": "x"}], "t": "y"}),
        "f.md": lambda p: make.write_text(p, "# Title\n\n```py\nx = 1\n```\n\n- item\n"),
    }
    original = seeds[name](tmp_path / f"original-{name}").read_bytes()
    path = tmp_path / name
    outcomes = set()
    for damaged in damaged_copies(original, seed=len(name), count=30):
        path.write_bytes(damaged)
        try:
            documents = load_file(path)
        except IngestError as error:
            assert error.message.startswith(name + " ")
            outcomes.add(type(error).__name__)
        else:
            assert documents and all(d.page_content.strip() for d in documents)
            outcomes.add("ok")
    assert outcomes  # something was exercised; any mix of "ok" and refusals is fine


def test_supported_extensions_are_lower_case_suffixes_with_a_dot() -> None:
    assert {".pdf", ".docx", ".html", ".htm", ".md", ".txt", ".csv", ".json"} <= (
        SUPPORTED_EXTENSIONS
    )
    assert all(ext.startswith(".") and ext == ext.lower() for ext in SUPPORTED_EXTENSIONS)


def test_every_format_sets_the_common_metadata(tmp_path: Path) -> None:
    paths = [
        make.write_pdf(tmp_path / "a.pdf", PAGES),
        make.write_docx(tmp_path / "b.docx"),
        make.write_html(tmp_path / "c.html"),
        make.write_text(tmp_path / "d.md", "# D\n\ntext"),
        make.write_text(tmp_path / "e.txt", "text"),
        make.write_csv(tmp_path / "f.csv", rows=2),
        make.write_json(tmp_path / "g.json", {"k": "v"}),
    ]
    for path in paths:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        for document in load_file(path):
            metadata = document.metadata
            assert document.page_content.strip()
            assert metadata["source_type"] == "file"
            assert metadata["source_id"] == metadata["file_name"] == path.name
            assert metadata["file_hash"] == digest
            assert metadata["title"]
            assert metadata["mime"] and metadata["format"]
            assert "\x00" not in document.page_content


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of permissions")
def test_unreadable_file_says_permission_denied(tmp_path: Path) -> None:
    path = make.write_text(tmp_path / "secret.txt", "x")
    path.chmod(0)

    error = refusal(path)

    assert isinstance(error, UnreadableFile)
    assert error.message == "secret.txt cannot be opened: permission denied."
