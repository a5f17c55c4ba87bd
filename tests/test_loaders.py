"""load_file: every format's text and metadata, and every refusal's type and message.

Pure tests (no database): each builds its files at test time with tests/doc_factory.py.
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest
from langchain_core.documents import Document

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
from ingest.loaders import SUPPORTED_EXTENSIONS, load_file
from tests import doc_factory as make

PAGES = [
    "Alpha page: the pump runs at 40 bar.",
    "Beta page: the valve opens at noon.",
    "Gamma page: the gasket is rubber.",
]


def refusal(path: Path, **kwargs: object) -> IngestError:
    """The error load_file raises for `path` (fails the test if it returns documents)."""
    with pytest.raises(IngestError) as caught:
        load_file(path, **kwargs)  # type: ignore[arg-type]
    return caught.value


def text_of(documents: list[Document]) -> str:
    return "\n".join(document.page_content for document in documents)


# --- PDF ----------------------------------------------------------------------------


def test_pdf_gives_one_document_per_page_with_1_based_page_numbers(tmp_path: Path) -> None:
    documents = load_file(make.write_pdf(tmp_path / "manual.pdf", PAGES))

    assert [d.page_content for d in documents] == PAGES
    assert [d.metadata["page"] for d in documents] == [1, 2, 3]
    assert all(d.metadata["pages"] == 3 for d in documents)


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


def test_image_only_pdf_asks_for_ocr(tmp_path: Path) -> None:
    error = refusal(make.write_image_only_pdf(tmp_path / "scan.pdf", pages=2))

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


# --- DOCX ---------------------------------------------------------------------------


def test_docx_headings_become_markdown_headings_in_reading_order(tmp_path: Path) -> None:
    text = text_of(load_file(make.write_docx(tmp_path / "guide.docx")))

    assert text.startswith(
        "# Setup\n\nInstall the pump before the first frost.\n\n## Tools\n\n"
        "- A torque wrench set to 40 Nm."
    )
    assert text.endswith("Closing remark after the tables.")


def test_docx_tables_are_rows_and_a_nested_table_stays_in_its_row(tmp_path: Path) -> None:
    text = text_of(load_file(make.write_docx(tmp_path / "guide.docx")))

    assert "Part | Stock\nValve | 12\nGasket | 7" in text
    assert "Spare kit | [bolt, M8; nut, M10]" in text


def test_docx_merged_cells_appear_once(tmp_path: Path) -> None:
    text = text_of(load_file(make.write_docx(tmp_path / "guide.docx")))

    assert text.count("Quarterly totals") == 1
    assert "Quarterly totals\nQ1 | Q2 | Q3" in text


def test_docx_reads_tracked_insertions_field_results_and_text_boxes(tmp_path: Path) -> None:
    text = text_of(load_file(make.write_docx_with_revisions(tmp_path / "draft.docx")))

    assert text == "First paragraph.\n\nKept inserted 7\n\nAnchor\nBoxed note"


def test_docx_metadata_has_its_title_and_format(tmp_path: Path) -> None:
    documents = load_file(make.write_docx(tmp_path / "guide.docx"))

    assert len(documents) == 1
    metadata = documents[0].metadata
    assert metadata["title"] == "Field Guide"
    assert metadata["format"] == "docx"
    assert metadata["mime"] == (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    )
    assert "page" not in metadata


def test_docx_without_a_title_property_is_titled_by_its_file_name(tmp_path: Path) -> None:
    documents = load_file(make.write_docx(tmp_path / "untitled.docx", title=None))

    assert documents[0].metadata["title"] == "untitled.docx"


def test_docx_with_only_images_has_no_extractable_text(tmp_path: Path) -> None:
    error = refusal(make.write_images_only_docx(tmp_path / "photos.docx", images=3))

    assert isinstance(error, NoExtractableText)
    assert error.message == "photos.docx contains only 3 image(s) and no text."


def test_truncated_docx_is_corrupt(tmp_path: Path) -> None:
    whole = make.write_docx(tmp_path / "whole.docx").read_bytes()
    path = make.write_truncated(tmp_path / "cut.docx", whole, keep=0.5)

    error = refusal(path)

    assert isinstance(error, CorruptFile)
    assert error.message == "cut.docx is damaged: its zip container cannot be read."


def test_zip_that_is_not_a_word_document_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "archive.docx"
    path.write_bytes(make.zip_bytes({"notes/readme.txt": "hello"}))

    error = refusal(path)

    assert isinstance(error, UnsupportedFile)
    assert error.message == (
        "archive.docx is not a Word document (DOCX): its content is a zip archive."
    )


def test_password_protected_docx_is_refused_as_encrypted(tmp_path: Path) -> None:
    path = tmp_path / "locked.docx"
    path.write_bytes(make.ole_bytes(encrypted=True))

    error = refusal(path)

    assert isinstance(error, EncryptedFile)
    assert error.message == "locked.docx is password-protected."


def test_old_word_file_renamed_docx_asks_for_a_real_docx(tmp_path: Path) -> None:
    path = tmp_path / "legacy.docx"
    path.write_bytes(make.ole_bytes(encrypted=False))

    error = refusal(path)

    assert isinstance(error, UnsupportedFile)
    assert error.message == "legacy.docx is an old Word 97-2003 (.doc) file, not a DOCX."
    assert error.hint is not None and "save it as .docx" in error.hint


# --- HTML ---------------------------------------------------------------------------


def test_html_keeps_the_main_text_without_scripts_styles_nav_or_footer(tmp_path: Path) -> None:
    text = text_of(load_file(make.write_html(tmp_path / "cafe.html")))

    assert "A café au lait costs 3,50 € and the niño menu costs 5 €." in text
    for boilerplate in ("trackingCode", "second script", "color: red", "Menu navigation link",
                        "Copyright footer", "Hidden promotional text"):
        assert boilerplate not in text


def test_html_headings_lists_and_tables_stay_readable(tmp_path: Path) -> None:
    text = text_of(load_file(make.write_html(tmp_path / "cafe.html")))

    assert text.startswith("# Our café\n\n")
    assert "## Opening hours\n\n- Monday to Friday\n- Saturday mornings" in text
    assert "Dish | Price\nCrêpe | 4 €" in text


def test_html_title_comes_from_the_title_element(tmp_path: Path) -> None:
    metadata = load_file(make.write_html(tmp_path / "cafe.html"))[0].metadata

    assert metadata["title"] == "Café prices – 2024"
    assert metadata["format"] == "html"
    assert metadata["mime"] == "text/html"


def test_html_honours_a_declared_cp1252_charset(tmp_path: Path) -> None:
    documents = load_file(make.write_html(tmp_path / "cafe.html", encoding="cp1252"))

    assert documents[0].metadata["encoding"] == "cp1252"
    assert "3,50 €" in documents[0].page_content


def test_html_in_cp1252_without_a_declaration_is_detected(tmp_path: Path) -> None:
    documents = load_file(make.write_html(tmp_path / "cafe.html", declare=False))

    assert "niño menu costs 5 €" in documents[0].page_content
    assert "Ã" not in documents[0].page_content


def test_html_declared_latin1_is_read_as_windows_1252_like_browsers_do(tmp_path: Path) -> None:
    path = make.write_text(
        tmp_path / "quote.html",
        '<html><head><meta charset="iso-8859-1"></head><body><p>\u201cQuoted\u201d 5 \u20ac</p>'
        "</body></html>",
        encoding="cp1252",
    )

    assert load_file(path)[0].page_content == "\u201cQuoted\u201d 5 \u20ac"


def test_html_without_a_main_element_drops_the_site_header_and_footer(tmp_path: Path) -> None:
    path = make.write_text(
        tmp_path / "plain.xhtml",
        '<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml">'
        "<head><title>Plain page</title></head><body><header><a href='/'>Site banner</a>"
        "</header><div><p>Body text here.</p></div><footer>Footer links</footer></body></html>",
    )

    documents = load_file(path)

    assert documents[0].page_content == "Body text here."
    assert documents[0].metadata["title"] == "Plain page"


def test_html_http_equiv_charset_is_honoured(tmp_path: Path) -> None:
    path = make.write_text(
        tmp_path / "ru.html",
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1251">'
        "<title>Привет</title></head><body><p>Привет мир</p></body></html>",
        encoding="cp1251",
    )

    documents = load_file(path)

    assert documents[0].page_content == "Привет мир"
    assert documents[0].metadata["title"] == "Привет"
    assert documents[0].metadata["encoding"] == "cp1251"


def test_html_with_only_scripts_has_no_extractable_text(tmp_path: Path) -> None:
    path = make.write_text(tmp_path / "app.html",
                           "<html><body><script>render()</script><nav>Home</nav></body></html>")

    error = refusal(path)

    assert isinstance(error, NoExtractableText)
    assert error.message == "app.html has no readable text (only markup, scripts or images)."


# --- Markdown -----------------------------------------------------------------------


def test_markdown_is_kept_as_markdown_and_titled_by_its_first_heading(tmp_path: Path) -> None:
    source = (
        "```bash\n# not a heading, a shell comment\npip install kb\n```\n\n"
        "Install Guide\n=============\n\n## Steps\n\n- one\n    - nested\n"
    )
    documents = load_file(make.write_text(tmp_path / "guide.md", source))

    assert documents[0].metadata["title"] == "Install Guide"
    assert documents[0].metadata["format"] == "markdown"
    assert documents[0].page_content == source.strip()


def test_markdown_front_matter_gives_the_title_and_is_not_indexed(tmp_path: Path) -> None:
    path = make.write_text(tmp_path / "post.md",
                           "---\ntitle: Release notes\ndate: 2024-01-01\n---\n# v2\n\nFaster.\n")

    documents = load_file(path)

    assert documents[0].metadata["title"] == "Release notes"
    assert documents[0].page_content == "# v2\n\nFaster."


def test_latin1_markdown_is_decoded_not_rejected(tmp_path: Path) -> None:
    path = make.write_text(tmp_path / "umlaut.md", "## können\n\näöüß\n", encoding="latin-1")

    documents = load_file(path)

    assert documents[0].page_content == "## können\n\näöüß"
    assert documents[0].metadata["title"] == "können"


# --- Plain text ---------------------------------------------------------------------


def test_utf16_text_with_a_bom_is_decoded(tmp_path: Path) -> None:
    path = make.write_text(tmp_path / "notes.txt", "\ufeffGrüße aus Köln\r\nZeile zwei",
                           encoding="utf-16-le")

    documents = load_file(path)

    assert documents[0].page_content == "Grüße aus Köln\nZeile zwei"
    assert documents[0].metadata["encoding"] == "utf-16"


def test_cp1252_text_is_detected(tmp_path: Path) -> None:
    text = "The \u201cpump\u201d costs 40 \u20ac \u2013 na\u00efve caf\u00e9 pricing"
    documents = load_file(make.write_text(tmp_path / "prices.txt", text, encoding="cp1252"))

    assert documents[0].page_content == text
    assert documents[0].metadata["encoding"] == "cp1252"


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Привет, как дела? Это тестовый документ на русском языке. Спасибо.", "cp1251"),
        ("Καλημέρα, αυτό είναι ένα δοκιμαστικό έγγραφο στα ελληνικά.", "cp1253"),
        ("Zażółć gęślą jaźń. Pchnąć w tę łódź jeża lub ośm skrzyń fig.", "cp1250"),
        ("Günaydın, bu Türkçe bir deneme belgesidir. Işık ağır şeyler.", "cp1254"),
        ("Die schöne Frau hat einen Kaffee mit Kuchen gegessen.", "latin-1"),
        ("Hello, this is UTF-16 without a byte order mark. Grüße.", "utf-16-le"),
        ("これは日本語のテスト文書です。よろしくお願いします。", "shift_jis"),
    ],
)
def test_legacy_encodings_are_detected(tmp_path: Path, text: str, encoding: str) -> None:
    path = make.write_text(tmp_path / "legacy.txt", text, encoding=encoding)

    assert load_file(path)[0].page_content == text


def test_utf8_bom_is_not_part_of_the_text(tmp_path: Path) -> None:
    documents = load_file(make.write_text(tmp_path / "bom.txt", "\ufeffHello", encoding="utf-8"))

    assert documents[0].page_content == "Hello"


def test_text_is_normalised_nul_bytes_dropped_and_spaces_collapsed(tmp_path: Path) -> None:
    path = tmp_path / "messy.txt"
    path.write_bytes(b"  first\x00 line \t with   gaps  \r\n\r\n\r\n\r\nsecond\x00 line\n\n")

    documents = load_file(path)

    assert documents[0].page_content == "first line with gaps\n\nsecond line"


def test_text_metadata_titles_by_file_name(tmp_path: Path) -> None:
    metadata = load_file(make.write_text(tmp_path / "notes.txt", "hello"))[0].metadata

    assert metadata["title"] == "notes.txt"
    assert (metadata["format"], metadata["mime"]) == ("text", "text/plain")


def test_png_renamed_txt_is_refused_naming_its_real_type(tmp_path: Path) -> None:
    path = tmp_path / "photo.txt"
    path.write_bytes(make.png_bytes())

    error = refusal(path)

    assert isinstance(error, UnsupportedFile)
    assert error.message == "photo.txt is not text: its content is a PNG file (image/png)."


def test_binary_of_no_known_type_named_txt_looks_binary(tmp_path: Path) -> None:
    path = tmp_path / "blob.txt"
    path.write_bytes(bytes(range(256)) * 8)

    error = refusal(path)

    assert isinstance(error, UnsupportedFile)
    assert error.message == "blob.txt looks like binary data, not text."


def test_pdf_renamed_txt_is_refused_with_a_rename_hint(tmp_path: Path) -> None:
    path = tmp_path / "scan.txt"
    path.write_bytes(make.pdf_bytes(PAGES))

    error = refusal(path)

    assert isinstance(error, UnsupportedFile)
    assert str(error) == (
        "scan.txt is not text: its content is a PDF. Rename it to scan.pdf and upload it again."
    )


def test_text_that_mentions_the_pdf_header_is_still_text(tmp_path: Path) -> None:
    path = make.write_text(tmp_path / "pdf-notes.md", "# PDF notes\n\nA PDF starts with %PDF-1.7.")

    assert load_file(path)[0].page_content.endswith("starts with %PDF-1.7.")


# --- CSV ----------------------------------------------------------------------------


def test_csv_rows_become_records_grouped_with_the_header(tmp_path: Path) -> None:
    documents = load_file(make.write_csv(tmp_path / "visits.csv", rows=60))

    assert len(documents) == 3  # 25 + 25 + 10 rows
    first = documents[0].page_content.split("\n")
    assert first[0] == "Columns: city, name, visitors"
    assert first[1] == "city: City1; name: Dr. Savage, No. 1; visitors: 10"
    assert len(first) == 26
    assert documents[2].page_content.startswith("Columns: city, name, visitors\ncity: City51;")
    assert [(d.metadata["line_start"], d.metadata["line_end"]) for d in documents] == [
        (2, 26), (27, 51), (52, 61)
    ]
    assert documents[0].metadata["rows"] == 60
    assert documents[0].metadata["format"] == "csv"


def test_semicolon_separated_csv_is_sniffed(tmp_path: Path) -> None:
    documents = load_file(make.write_csv(tmp_path / "visits.csv", rows=3, delimiter=";"))

    assert "city: City2; name: Dr. Savage, No. 2; visitors: 20" in documents[0].page_content


def test_tsv_is_tab_separated(tmp_path: Path) -> None:
    path = make.write_text(tmp_path / "stock.tsv", "part\tcount\nvalve, brass\t12\n")

    documents = load_file(path)

    assert documents[0].page_content == "Columns: part, count\npart: valve, brass; count: 12"
    assert documents[0].metadata["mime"] == "text/tab-separated-values"


def test_csv_leaves_empty_values_out_and_names_extra_columns(tmp_path: Path) -> None:
    path = make.write_text(tmp_path / "ragged.csv", "a,b\n1,\n,2,3\n")

    text = load_file(path)[0].page_content

    assert text == "Columns: a, b\na: 1\nb: 2; column 3: 3"


def test_cp1252_csv_is_decoded(tmp_path: Path) -> None:
    path = make.write_text(tmp_path / "menu.csv", "dish,price\nCrêpe,4 €\n", encoding="cp1252")

    assert "dish: Crêpe; price: 4 €" in load_file(path)[0].page_content


def test_csv_with_only_a_header_is_empty(tmp_path: Path) -> None:
    error = refusal(make.write_text(tmp_path / "header.csv", "a,b,c\n"))

    assert isinstance(error, EmptyFile)
    assert error.message == "header.csv has a header row but no data rows."


def test_csv_field_beyond_the_csv_module_limit_is_corrupt_with_its_line(tmp_path: Path) -> None:
    path = make.write_text(tmp_path / "huge.csv", 'a,b\n1,2\n3,"' + "x" * 200_000 + '"\n')

    error = refusal(path)

    assert isinstance(error, CorruptFile)
    assert error.message.startswith("huge.csv is not valid CSV (line 3: field larger than")


# --- JSON ---------------------------------------------------------------------------


def test_json_object_is_flattened_to_dotted_paths(tmp_path: Path) -> None:
    data = {"title": "Pump config", "server": {"host": "pump-1", "ports": [80, 443],
            "tls": True, "proxy": None}, "owners": [{"name": "Ana"}, {"name": "Bo"}]}

    documents = load_file(make.write_json(tmp_path / "config.json", data))

    assert documents[0].page_content == (
        "title: Pump config\nserver.host: pump-1\nserver.ports: 80, 443\nserver.tls: true\n"
        "owners[0].name: Ana\nowners[1].name: Bo"
    )
    assert documents[0].metadata["title"] == "Pump config"
    assert documents[0].metadata["format"] == "json"


def test_json_array_of_objects_becomes_records_in_groups(tmp_path: Path) -> None:
    data = [{"id": n, "name": f"item {n}", "tags": ["a", "b"]} for n in range(1, 31)]

    documents = load_file(make.write_json(tmp_path / "items.json", data))

    assert len(documents) == 2
    assert documents[0].page_content.split("\n")[0] == "id: 1; name: item 1; tags: a, b"
    assert [(d.metadata["record_start"], d.metadata["record_end"]) for d in documents] == [
        (1, 25), (26, 30)
    ]


def test_json_lines_are_records(tmp_path: Path) -> None:
    path = make.write_text(tmp_path / "events.jsonl", '{"event": "start"}\n\n{"event": "stop"}\n')

    assert load_file(path)[0].page_content == "event: start\nevent: stop"


def test_invalid_json_reports_line_and_column(tmp_path: Path) -> None:
    error = refusal(make.write_text(tmp_path / "broken.json", '{\n  "a": 1,\n  "b": \n}'))

    assert isinstance(error, CorruptFile)
    assert error.message == "broken.json is not valid JSON: Expecting value at line 4, column 1."


def test_invalid_json_line_reports_its_line(tmp_path: Path) -> None:
    error = refusal(make.write_text(tmp_path / "events.jsonl", '{"ok": 1}\n{"bad": }\n'))

    assert isinstance(error, CorruptFile)
    assert error.message == (
        "events.jsonl is not valid JSON Lines: Expecting value at line 2, column 9."
    )


def test_json_with_no_values_is_empty(tmp_path: Path) -> None:
    error = refusal(make.write_json(tmp_path / "blank.json", {"a": None, "b": [], "c": {}}))

    assert isinstance(error, EmptyFile)
    assert error.message == "blank.json holds no values (only empty objects, arrays or nulls)."


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
    path = make.write_text(tmp_path / "slides.pptx", "whatever")

    error = refusal(path)

    assert isinstance(error, UnsupportedFile)
    assert error.message == "slides.pptx is not a supported file type (.pptx)."
    assert error.hint is not None
    assert error.hint.startswith("Export it as PDF and upload that. Supported types: ")
    for extension in (".pdf", ".docx", ".html", ".md", ".txt", ".csv", ".json"):
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
