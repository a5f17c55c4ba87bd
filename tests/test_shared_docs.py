"""load_file over the real documents in ../shared/docs (skipped when the folder is absent).

EXPECTED is our contract for each file, written from the folder's MANIFEST.md: either it
ingests (with some text we know it holds) or it is refused with a given error class.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from typer.testing import CliRunner

from chat_app.cli import app
from ingest.errors import (
    CorruptFile,
    EmptyFile,
    EncryptedFile,
    IngestError,
    NoExtractableText,
    UnsupportedFile,
)
from ingest.loaders import load_file

DOCS = Path(__file__).resolve().parents[2] / "shared" / "docs"

if not DOCS.is_dir():
    pytest.skip(f"{DOCS} is absent", allow_module_level=True)


@dataclass(frozen=True)
class Ingests:
    """The file loads: at least `min_chars` of text holding each of `contains`."""

    min_chars: int
    contains: tuple[str, ...] = ()
    lacks: tuple[str, ...] = ()
    documents: int | None = None
    title: str | None = None


EXPECTED: dict[str, Ingests | type[IngestError]] = {
    "federal-register-2020-17221.pdf": Ingests(
        55_000, ("Boeing", "Airworthiness Directives"), documents=15
    ),
    "geotopo-lecture-notes-de-117p.pdf": Ingests(
        120_000,
        ("Topologische Räume", "Ein topologischer Raum ist ein Paar"),
        documents=117,
        title="Geometrie und Topologie",
    ),
    "pdflatex-4-pages.pdf": Ingests(10_000, documents=4),
    "scotus-transcript-p1.pdf": Ingests(500, ("MIRZAYANCE",), documents=1),
    "libreoffice-writer-password.pdf": EncryptedFile,
    # Rule: an empty user password opens it in any viewer, so it is ingested.
    "federal-register-encrypted-owner-password-only.pdf": Ingests(
        55_000, ("Boeing",), documents=15
    ),
    # A scan without a text layer: read by OCR (tesseract), pages kept.
    "federal-register-p1-2-scanned-image-only.pdf": Ingests(
        12_000,
        ("DEPARTMENT OF TRANSPORTATION", "must receive comments", "September 21,"),
        documents=2,
        title="federal-register-p1-2-scanned-image-only",  # its PDF metadata title
    ),
    # A picture with no text: OCR finds none either.
    "grayscale-image-only-no-text.pdf": NoExtractableText,
    "federal-register-truncated-40pct.pdf": CorruptFile,
    "empty-0-bytes.pdf": EmptyFile,
    "not-really-a-pdf.pdf": UnsupportedFile,
    "doj-chapter13-trustee-handbook.docx": Ingests(
        700_000, ("# CHAPTER 1", "Standing Trustees"), documents=1
    ),
    "docx-tables-nested-merged.docx": Ingests(
        100,
        ("Header Col 1 | Header Col 2", "Lorem ipsum | A link example", "d | [e, f; g&t, h] | i"),
    ),
    "docx-images-only-no-text.docx": NoExtractableText,
    "wikipedia-mozilla.html": Ingests(
        20_000,
        ("Mozilla is a free-software community", "## History"),
        lacks=("mw.config", "RLQ", "Random article", "Privacy policy", "Jump to"),
        title="Mozilla - Wikipedia",
    ),
    "fake-html-cp1252.html": Ingests(
        500,
        ("15,50 €", "El niño comió paella con ñoquis", "O João", "Kvinnan åt köttbullar"),
        lacks=("Ã", "\ufffd"),
        title="My First Heading",
    ),
    "pdfplumber-README.md": Ingests(30_000, ("```", "## Table of Contents"), title="pdfplumber"),
    "umlauts-latin1.md": Ingests(10, ("können", "äöüß"), title="können"),
    "seattle-weather.csv": Ingests(
        100_000,
        (
            "date: 2012-02-13; precipitation: 11.4; temp_max: 7.2; temp_min: 4.4; "
            "wind: 1.4; weather: rain",
        ),
    ),
    "airports.csv": Ingests(
        200_000, ("iata: 53A; name: Dr. C.P. Savage, Sr.; city: Montezuma; state: GA",)
    ),
    "federal-register-p1-3-cp1252.txt": Ingests(
        20_000, ("Federal Register", "Boeing", "’", "—"), lacks=("\x92", "â€", "\ufffd")
    ),
    "fake-text-utf-16-bom.txt": Ingests(100, ("This is a test document to use for unit tests",)),
}


@cache
def loaded(name: str) -> list[Document]:
    return load_file(DOCS / name)


def whitespace_free(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_every_document_in_the_folder_has_an_expectation() -> None:
    present = {p.name for p in DOCS.iterdir() if p.name not in ("MANIFEST.md", "qa.jsonl")}

    assert present == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_document_meets_its_expected_outcome(name: str) -> None:
    expected = EXPECTED[name]
    if not isinstance(expected, Ingests):
        with pytest.raises(IngestError) as caught:
            load_file(DOCS / name)
        assert type(caught.value) is expected
        assert caught.value.message.startswith(f"{name} ")
        assert caught.value.hint
        return

    documents = loaded(name)
    text = "\n".join(d.page_content for d in documents)
    assert len(text) >= expected.min_chars
    for needle in expected.contains:
        assert needle in text, needle
    for needle in expected.lacks:
        assert needle not in text, needle
    if expected.documents is not None:
        assert len(documents) == expected.documents
    assert documents[0].metadata["title"] == (expected.title or name)
    for document in documents:
        assert document.page_content.strip()
        assert document.metadata["source_id"] == name
        assert len(document.metadata["file_hash"]) == 64


def test_scanned_pdf_keeps_its_pages_and_has_the_comment_deadline_on_page_one() -> None:
    documents = loaded("federal-register-p1-2-scanned-image-only.pdf")

    assert [(d.metadata["page"], d.metadata["ocr"]) for d in documents] == [(1, True), (2, True)]
    page_one = " ".join(documents[0].page_content.split())
    assert "The FAA must receive comments on this proposed AD by September 21, 2020." in (page_one)


def test_pdf_pages_are_numbered_from_one_in_order() -> None:
    pages = [d.metadata["page"] for d in loaded("federal-register-2020-17221.pdf")]

    assert pages == list(range(1, 16))


def test_lecture_notes_keep_their_roman_front_matter_labels() -> None:
    documents = loaded("geotopo-lecture-notes-de-117p.pdf")

    labels = [(d.metadata["page"], d.metadata.get("page_label")) for d in documents[:5]]
    assert labels == [(1, "i"), (2, "ii"), (3, "iii"), (4, "1"), (5, "2")]


def test_owner_password_pdf_reads_exactly_like_its_unencrypted_original() -> None:
    original = loaded("federal-register-2020-17221.pdf")
    encrypted = loaded("federal-register-encrypted-owner-password-only.pdf")

    assert [d.page_content for d in encrypted] == [d.page_content for d in original]


def qa_items() -> list[dict[str, object]]:
    path = DOCS / "qa.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("item", qa_items(), ids=lambda item: str(item["id"]))
def test_qa_passage_is_in_the_loaded_text_at_its_location(item: dict[str, object]) -> None:
    documents = loaded(str(item["doc"]))
    location = item["location"]
    assert isinstance(location, dict)
    passage = str(item["passage"])
    if "line" in location:
        # CSV: the raw line is turned into a record; the group covering that line holds it.
        line = int(location["line"])
        (group,) = [
            d for d in documents if d.metadata["line_start"] <= line <= d.metadata["line_end"]
        ]
        assert all(f": {value}" in group.page_content for value in passage.split(","))
        return
    if "page" in location:
        documents = [d for d in documents if d.metadata["page"] == location["page"]]
    haystack = whitespace_free("\n".join(d.page_content for d in documents))
    assert whitespace_free(passage) in haystack


@pytest.mark.model
def test_the_scanned_federal_register_answers_the_comment_deadline_question(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_user: Callable[..., Any]
) -> None:
    # As a user would: `kb ingest` the scan (OCR), then `kb ask` with the real model.
    make_user("x")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    env = {"KB_DATABASE_URL": db_url, "DATABASE_URL": db_url, "KB_LLM": "", "COLUMNS": "200"}
    scan = str(DOCS / "federal-register-p1-2-scanned-image-only.pdf")
    question = (
        "By what date must the FAA receive comments on the proposed Boeing 737 MAX "
        "airworthiness directive?"
    )

    ingested = runner.invoke(app, ["ingest", scan, "--user", "x"], env=env)
    asked = runner.invoke(app, ["ask", question, "--user", "x"], env=env)

    assert ingested.exit_code == 0, ingested.output
    assert "1 indexed (1 files)" in ingested.stdout
    assert asked.exit_code == 0, asked.output
    # The extractive answer quotes the passage with the date and cites it as [n]...
    quote = re.search(
        r"must receive comments on this proposed AD by September 21, 2020\S*” \[(\d+)\]",
        asked.stdout,
    )
    assert quote is not None, asked.stdout
    # ...and source n is page 1 of the scan.
    (row,) = [line for line in asked.stdout.splitlines() if line.startswith(f"│ {quote[1]} │")]
    assert "federal-register-p1-2-scanned-image-only.pdf (page 1)" in row
