"""PPTX, XLSX, EPUB, EML and mbox: real files written at test time, their text and
locations, and one clear refusal for each kind of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.documents import Document

import tests.doc_factory as make
import tests.format_factory as office
from ingest.errors import (
    CorruptFile,
    EmptyFile,
    EncryptedFile,
    IngestError,
    NoExtractableText,
    UnsupportedFile,
)
from ingest.loaders import load_file

XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def locations(documents: list[Document]) -> list[str]:
    return [str(d.metadata.get("location")) for d in documents]


# --- PowerPoint -------------------------------------------------------------------


def test_pptx_gives_one_document_per_slide_with_text_and_keeps_slide_numbers(
    tmp_path: Path,
) -> None:
    documents = load_file(office.write_pptx(tmp_path / "review.pptx"))

    assert [d.metadata["slide"] for d in documents] == [1, 2, 3, 5]  # slide 4 is blank
    assert locations(documents) == ["slide 1", "slide 2", "slide 3", "slide 5"]
    assert documents[0].metadata["title"] == "Quarterly review"
    assert documents[0].metadata["slides"] == 5
    assert documents[1].page_content == (
        "Budget\nTravel costs fell by 12 percent\nHiring paused until June\n\n"
        "Speaker notes: Mention the auditor's remark about invoices."
    )


def test_pptx_tables_are_rows_and_grouped_boxes_read_left_to_right(tmp_path: Path) -> None:
    documents = load_file(office.write_pptx(tmp_path / "review.pptx"))

    assert documents[2].page_content == "Headcount\nTeam | People\nResearch | 14\nSupport | 9"
    assert documents[3].page_content == ("First column: alpaca fleece\nSecond column: llama fodder")


def test_pptx_with_slides_but_no_text_says_so(tmp_path: Path) -> None:
    error = make.refusal(office.write_blank_pptx(tmp_path / "pictures.pptx", slides=3))

    assert isinstance(error, NoExtractableText)
    assert error.message == (
        "pictures.pptx has no text on its 3 slide(s) (only pictures or shapes)."
    )


def test_pptx_without_slides_is_empty(tmp_path: Path) -> None:
    error = make.refusal(office.write_blank_pptx(tmp_path / "new.pptx", slides=0))

    assert isinstance(error, EmptyFile)
    assert error.message == "new.pptx has no slides."


# --- Excel ------------------------------------------------------------------------


def test_xlsx_rows_become_records_under_their_sheet_and_header(tmp_path: Path) -> None:
    documents = load_file(office.write_xlsx(tmp_path / "budget.xlsx"))

    assert locations(documents) == [
        "sheet Budget, rows 2-26",
        "sheet Budget, rows 27-31",
        "sheet Notes, row 1",
    ]
    first = documents[0].page_content.splitlines()
    assert first[:3] == [
        "Sheet: Budget",
        "Columns: Item, Amount, Due, column 4, Owner",
        "Item: Item 1; Amount: 2.5; Due: 2024-01-02; Owner: Ana",
    ]
    assert len(first) == 2 + 25
    assert documents[1].page_content.splitlines()[:2] == first[:2]  # context repeated
    assert (
        documents[2].page_content == "Sheet: Notes\nApproved by the board on | 2024-03-05 14:30:00"
    )
    assert [d.metadata["sheet"] for d in documents] == ["Budget", "Budget", "Notes"]
    assert (documents[0].metadata["row_start"], documents[0].metadata["row_end"]) == (2, 26)
    assert documents[0].metadata["title"] == "Budget 2024"


def test_xlsx_with_no_values_is_empty(tmp_path: Path) -> None:
    error = make.refusal(office.write_empty_xlsx(tmp_path / "blank.xlsx"))

    assert isinstance(error, EmptyFile)
    assert error.message == "blank.xlsx has no cells with values in its 2 sheet(s)."


def test_password_protected_xlsx_is_refused_as_encrypted(tmp_path: Path) -> None:
    path = office.write_encrypted_xlsx(tmp_path / "salaries.xlsx")
    assert path.read_bytes().startswith(b"\xd0\xcf\x11\xe0")  # Office's encrypted container

    error = make.refusal(path)

    assert isinstance(error, EncryptedFile)
    assert str(error) == (
        "salaries.xlsx is password-protected. Remove the password (or export an unprotected "
        "copy) and upload it again."
    )


def test_old_excel_file_named_xlsx_says_what_it_is(tmp_path: Path) -> None:
    path = tmp_path / "old.xlsx"
    path.write_bytes(make.ole_bytes(encrypted=False))

    error = make.refusal(path)

    assert isinstance(error, UnsupportedFile)
    assert error.message == ("old.xlsx is an old Excel 97-2003 (.xls) file, not an XLSX.")


def test_a_workbook_named_pptx_is_told_to_be_renamed(tmp_path: Path) -> None:
    path = tmp_path / "deck.pptx"
    path.write_bytes(office.write_xlsx(tmp_path / "budget.xlsx").read_bytes())

    error = make.refusal(path)

    assert isinstance(error, UnsupportedFile)
    assert error.hint == "Rename it to deck.xlsx and upload it again."


# --- EPUB -------------------------------------------------------------------------


def test_epub_gives_one_document_per_chapter_titled_from_its_table_of_contents(
    tmp_path: Path,
) -> None:
    documents = load_file(office.write_epub(tmp_path / "notes.epub"))

    assert locations(documents) == [
        "chapter 1: Down the Valley",
        "chapter 2: Shearing Season",
        "chapter 3: Afterword",  # not in the table of contents: its first heading
    ]
    assert [d.metadata["chapter"] for d in documents] == [1, 2, 3]
    assert documents[0].page_content == "# Down the Valley\n\nThe herd moved at dawn."
    assert documents[0].metadata["title"] == "Field Notes from the Andes"


def test_drm_protected_epub_is_refused(tmp_path: Path) -> None:
    error = make.refusal(office.write_drm_epub(tmp_path / "bought.epub"))

    assert isinstance(error, EncryptedFile)
    assert error.message == "bought.epub is DRM-protected: its chapters are encrypted."


def test_opendocument_named_epub_is_not_taken_for_a_book(tmp_path: Path) -> None:
    path = tmp_path / "letter.epub"
    path.write_bytes(make.zip_bytes({"mimetype": "application/vnd.oasis.opendocument.text"}))

    error = make.refusal(path)

    assert isinstance(error, UnsupportedFile)
    assert (
        error.message == "letter.epub is not an EPUB e-book: its content is an OpenDocument file."
    )


# --- E-mail -----------------------------------------------------------------------


def pump_mail(tmp_path: Path) -> office.EmailMessage:
    return office.mail(
        "Pump inspection",
        "Hi team,\nthe report and the budget are attached.\nAna",
        html="<p>Hi team,</p><p>the report is <b>attached</b>.</p>",
        attachments=[
            ("report.pdf", office.report_pdf_bytes(), "application/pdf"),
            ("budget.xlsx", office.write_xlsx(tmp_path / "b.xlsx").read_bytes(), XLSX_MIME),
            ("photos.zip", make.zip_bytes({"a.txt": "x"}), "application/zip"),
            ("broken.pdf", b"%PDF-1.4 not really", "application/pdf"),
        ],
    )


def test_eml_gives_the_message_then_its_readable_attachments(tmp_path: Path) -> None:
    documents = load_file(office.write_eml(tmp_path / "pump.eml", pump_mail(tmp_path)))

    message = documents[0]
    assert message.page_content.splitlines()[:4] == [
        "Subject: Pump inspection",
        "From: Ana Lima <ana@example.org>",
        "To: team@example.org",
        f"Date: {message.metadata['date']}",
    ]
    assert "Hi team,\nthe report and the budget are attached.\nAna" in message.page_content
    assert message.metadata["title"] == "Pump inspection"
    assert message.metadata["from"] == "Ana Lima <ana@example.org>"
    assert message.metadata["date"].startswith("2024-03-05T09:30:00")
    assert locations(documents[1:]) == [
        "attachment report.pdf, page 1",
        "attachment report.pdf, page 2",
        "attachment budget.xlsx, sheet Budget, rows 2-26",
        "attachment budget.xlsx, sheet Budget, rows 27-31",
        "attachment budget.xlsx, sheet Notes, row 1",
    ]
    assert documents[1].page_content == (
        "Attachment: report.pdf\nThe pump inspection found two worn gaskets."
    )
    assert {d.metadata["source_id"] for d in documents} == {"pump.eml"}


def test_eml_attachments_that_cannot_be_read_are_named_in_the_message(tmp_path: Path) -> None:
    message = load_file(office.write_eml(tmp_path / "pump.eml", pump_mail(tmp_path)))[0]

    lines = message.page_content.splitlines()
    assert "Attachments: report.pdf, budget.xlsx" in lines
    (skipped,) = [line for line in lines if line.startswith("Not indexed: ")]
    assert "photos.zip is not a supported file type (.zip)." in skipped
    assert "broken.pdf is not a readable PDF" in skipped


def test_a_forwarded_message_and_its_attachment_are_read(tmp_path: Path) -> None:
    inner = office.mail(
        "Original report",
        "See the attached report.",
        attachments=[("report.pdf", office.report_pdf_bytes(), "application/pdf")],
    )
    outer = office.mail("Fwd: report", "Forwarding this.")
    outer.add_attachment(inner, filename="original.eml")

    documents = load_file(office.write_eml(tmp_path / "fwd.eml", outer))

    assert locations(documents)[1:] == [
        "attachment original.eml",
        "attachment original.eml, attachment report.pdf, page 1",
        "attachment original.eml, attachment report.pdf, page 2",
    ]
    assert "Subject: Original report" in documents[1].page_content


def test_html_only_eml_is_read_as_text(tmp_path: Path) -> None:
    mail = office.mail("Menu", "placeholder")
    mail.set_content("<h1>Lunch</h1><p>Quinoa soup &amp; bread</p>", subtype="html")

    text = load_file(office.write_eml(tmp_path / "menu.eml", mail))[0].page_content

    assert "# Lunch\n\nQuinoa soup & bread" in text
    assert "<p>" not in text


def test_text_that_is_not_an_email_is_refused(tmp_path: Path) -> None:
    error = make.refusal(make.write_text(tmp_path / "notes.eml", "just some notes\n\nmore"))

    assert isinstance(error, UnsupportedFile)
    assert error.message == (
        "notes.eml is not an e-mail message: it has no From, To, Subject or Date header."
    )


def test_mbox_gives_each_message_its_own_location(tmp_path: Path) -> None:
    path = office.write_mbox(
        tmp_path / "inbox.mbox",
        [pump_mail(tmp_path), office.mail("Fodder", "The fodder arrives on Tuesday.")],
    )
    reports: list[str] = []

    documents = load_file(path, progress=reports.append)

    assert [loc for loc in locations(documents) if "attachment" not in loc] == [
        "message 1: Pump inspection",
        "message 2: Fodder",
    ]
    assert "message 1: Pump inspection, attachment report.pdf, page 1" in locations(documents)
    assert "The fodder arrives on Tuesday." in documents[-1].page_content
    assert documents[-1].metadata["subject"] == "Fodder"
    assert documents[0].metadata["messages"] == 2
    assert "reading inbox.mbox: message 2/2" in reports


def test_mbox_without_messages_is_refused(tmp_path: Path) -> None:
    error = make.refusal(make.write_text(tmp_path / "empty.mbox", "hello there"))

    assert isinstance(error, UnsupportedFile)
    assert (
        error.message == 'empty.mbox is not an mbox mailbox: it does not start with a "From " line.'
    )


# --- Every new format -------------------------------------------------------------

WRITERS = {
    "a.pptx": office.write_pptx,
    "b.xlsx": office.write_xlsx,
    "c.epub": office.write_epub,
    "d.eml": lambda p: office.write_eml(p, office.mail("Hello", "Body text.")),
}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_empty_file_is_refused_as_empty(tmp_path: Path, name: str) -> None:
    error = make.refusal(make.write_text(tmp_path / name, ""))

    assert isinstance(error, EmptyFile)
    assert error.message == f"{name} is empty (0 bytes)."


@pytest.mark.parametrize("name", ["a.pptx", "b.xlsx", "c.epub"])
def test_truncated_archive_is_refused_as_corrupt(tmp_path: Path, name: str) -> None:
    original = WRITERS[name](tmp_path / f"original-{name}").read_bytes()
    path = make.write_truncated(tmp_path / name, original, keep=0.5)

    error = make.refusal(path)

    assert isinstance(error, CorruptFile)
    assert error.message == f"{name} is damaged: its zip container cannot be read."


@pytest.mark.parametrize("name", ["a.pptx", "b.xlsx", "c.epub"])
def test_archive_missing_its_main_part_is_refused_as_corrupt(tmp_path: Path, name: str) -> None:
    # The member that names the format is there, the rest of the package is not.
    member = {
        "a.pptx": "ppt/presentation.xml",
        "b.xlsx": "xl/workbook.xml",
        "c.epub": "mimetype",
    }[name]
    content = "application/epub+zip" if name == "c.epub" else "<broken"
    path = tmp_path / name
    path.write_bytes(make.zip_bytes({member: content}))

    error = make.refusal(path)

    assert isinstance(error, CorruptFile)
    assert error.message.startswith(f"{name} is not a readable ")


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_damaged_copies_fail_with_an_ingest_error_never_a_crash(tmp_path: Path, name: str) -> None:
    from tests.test_loaders import damaged_copies

    original = WRITERS[name](tmp_path / f"original-{name}").read_bytes()
    path = tmp_path / name
    for damaged in damaged_copies(original, seed=len(name), count=20):
        path.write_bytes(damaged)
        try:
            documents = load_file(path)
        except IngestError as error:
            assert error.message.startswith(name + " ")
        else:
            assert documents and all(d.page_content.strip() for d in documents)


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_every_new_format_sets_the_common_metadata(tmp_path: Path, name: str) -> None:
    path = WRITERS[name](tmp_path / name)

    for document in load_file(path):
        assert document.page_content.strip()
        assert document.metadata["source_id"] == document.metadata["file_name"] == name
        assert document.metadata["format"] == Path(name).suffix[1:]
        assert len(document.metadata["file_hash"]) == 64
