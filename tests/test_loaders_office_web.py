"""load_file on DOCX, HTML and Markdown: text, structure, titles, encodings and refusals.

Pure tests (no database): each builds its files at test time with tests/doc_factory.py.
"""

from __future__ import annotations

from pathlib import Path

from ingest.errors import (
    CorruptFile,
    EncryptedFile,
    NoExtractableText,
    UnsupportedFile,
)
from ingest.loaders import load_file
from tests import doc_factory as make
from tests.doc_factory import refusal, text_of

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
    for boilerplate in (
        "trackingCode",
        "second script",
        "color: red",
        "Menu navigation link",
        "Copyright footer",
        "Hidden promotional text",
    ):
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


def test_html_whose_declared_charset_is_wrong_is_decoded_by_its_bytes(tmp_path: Path) -> None:
    path = make.write_text(
        tmp_path / "liar.html",
        '<html><head><meta charset="utf-8"></head><body><p>Crêpe für 4 € – très bon</p>'
        "</body></html>",
        encoding="cp1252",
    )

    assert load_file(path)[0].page_content == "Crêpe für 4 € – très bon"


def test_deeply_nested_html_is_read_without_hitting_the_recursion_limit(tmp_path: Path) -> None:
    nested = "<div>" * 5000 + "deep text" + "</div>" * 5000
    path = make.write_text(tmp_path / "deep.html", f"<html><body>{nested}</body></html>")

    assert load_file(path)[0].page_content == "deep text"


def test_main_element_holding_only_a_script_falls_back_to_the_body(tmp_path: Path) -> None:
    path = make.write_text(
        tmp_path / "shell.html",
        "<html><body><main><script>boot()</script></main><p>Real body text</p></body></html>",
    )

    assert load_file(path)[0].page_content == "Real body text"


def test_html_with_only_scripts_has_no_extractable_text(tmp_path: Path) -> None:
    path = make.write_text(
        tmp_path / "app.html", "<html><body><script>render()</script><nav>Home</nav></body></html>"
    )

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
    path = make.write_text(
        tmp_path / "post.md", "---\ntitle: Release notes\ndate: 2024-01-01\n---\n# v2\n\nFaster.\n"
    )

    documents = load_file(path)

    assert documents[0].metadata["title"] == "Release notes"
    assert documents[0].page_content == "# v2\n\nFaster."


def test_latin1_markdown_is_decoded_not_rejected(tmp_path: Path) -> None:
    path = make.write_text(tmp_path / "umlaut.md", "## können\n\näöüß\n", encoding="latin-1")

    documents = load_file(path)

    assert documents[0].page_content == "## können\n\näöüß"
    assert documents[0].metadata["title"] == "können"
