"""OCR with the real tesseract: scanned PDFs, mixed PDFs, PNG/JPEG/TIFF, languages,
progress, and what people are told when tesseract or a language is missing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import tests.doc_factory as make
from ingest.errors import NoExtractableText, OcrUnavailable
from ingest.loaders import LoadOptions, load_file
from ingest.loaders.options import OcrOptions
from tests.cli import run_python

pytestmark = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract missing")

PAGE_ONE = ["Invoice 4711 for the alpaca shearing", "Payment is due within thirty days"]
PAGE_TWO = ["The llama feeder needs new hinges", "Call the workshop before Friday"]


def installed_languages() -> set[str]:
    result = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True)
    return {line.strip() for line in result.stdout.splitlines()[1:]}


def ocr(languages: str = "eng", *, enabled: bool = True) -> LoadOptions:
    return LoadOptions(ocr=OcrOptions(enabled=enabled, languages=languages))


def test_scanned_pdf_is_read_by_ocr_with_its_page_numbers(tmp_path: Path) -> None:
    path = make.write_scanned_pdf(tmp_path / "scan.pdf", [PAGE_ONE, PAGE_TWO])

    documents = load_file(path)

    assert [d.metadata["page"] for d in documents] == [1, 2]
    assert all(d.metadata["ocr"] is True for d in documents)
    assert "Invoice 4711 for the alpaca shearing" in documents[0].page_content
    assert "Call the workshop before Friday" in documents[1].page_content
    assert documents[0].metadata["ocr_pages"] == 2


def test_mixed_pdf_ocrs_only_the_pages_without_a_text_layer(tmp_path: Path) -> None:
    typed = "This page was typed and has a text layer."
    path = make.write_pdf(
        tmp_path / "mixed.pdf", [typed, make.text_image(PAGE_TWO), "Typed again at the end."]
    )
    reports: list[str] = []

    documents = load_file(path, progress=reports.append)

    assert [d.metadata["page"] for d in documents] == [1, 2, 3]
    assert [d.metadata.get("ocr", False) for d in documents] == [False, True, False]
    assert documents[0].page_content == typed
    assert "The llama feeder needs new hinges" in documents[1].page_content
    assert reports == ["OCR mixed.pdf: 1/1 pages"]


def test_long_scans_report_progress_page_by_page(tmp_path: Path) -> None:
    path = make.write_scanned_pdf(tmp_path / "long.pdf", [PAGE_ONE, PAGE_TWO, PAGE_ONE])
    reports: list[str] = []

    load_file(path, progress=reports.append, options=LoadOptions(ocr=OcrOptions(jobs=2)))

    assert reports == [f"OCR long.pdf: {n}/3 pages" for n in (1, 2, 3)]


@pytest.mark.parametrize("name", ["note.png", "note.jpg", "note.jpeg"])
def test_images_are_read_by_ocr(tmp_path: Path, name: str) -> None:
    path = make.write_image(tmp_path / name, [make.text_image(PAGE_ONE)])

    documents = load_file(path)

    assert len(documents) == 1
    assert "Payment is due within thirty days" in documents[0].page_content
    assert documents[0].metadata["format"] == "image"
    assert documents[0].metadata["ocr"] is True


def test_transparent_png_is_read_as_black_on_white(tmp_path: Path) -> None:
    path = make.write_image(tmp_path / "clear.png", [make.text_image(PAGE_TWO, mode="RGBA")])

    assert "The llama feeder needs new hinges" in load_file(path)[0].page_content


def test_multi_page_tiff_keeps_a_page_number_per_frame(tmp_path: Path) -> None:
    frames = [make.text_image(PAGE_ONE), make.text_image(PAGE_TWO)]
    path = make.write_image(tmp_path / "fax.tiff", frames)

    documents = load_file(path)

    assert [(d.metadata["page"], d.metadata["location"]) for d in documents] == [
        (1, "page 1"),
        (2, "page 2"),
    ]
    assert "Invoice 4711" in documents[0].page_content
    assert "llama feeder" in documents[1].page_content


def test_german_text_is_read_with_the_german_language_data(tmp_path: Path) -> None:
    if "deu" not in installed_languages():
        pytest.skip("tesseract-ocr-deu is not installed")
    lines = ["Die Größe der Straße wurde geprüft", "Übermorgen kommt der Gutachter"]
    path = make.write_image(tmp_path / "brief.png", [make.typeset_image(lines)])

    text = load_file(path, options=ocr("deu"))[0].page_content

    assert "Größe der Straße wurde geprüft" in text
    assert "Übermorgen" in text


def test_image_without_recognisable_text_gets_the_no_text_message(tmp_path: Path) -> None:
    path = tmp_path / "shapes.png"
    make._picture().save(path)

    error = make.refusal(path)

    assert isinstance(error, NoExtractableText)
    assert error.message == "shapes.png shows no recognisable text (OCR found none)."


def test_scan_without_recognisable_text_says_ocr_found_none(tmp_path: Path) -> None:
    error = make.refusal(make.write_image_only_pdf(tmp_path / "scan.pdf", pages=2))

    assert isinstance(error, NoExtractableText)
    assert error.message == (
        "scan.pdf has no text layer, and OCR found no recognisable text on its 2 pages."
    )


def test_with_ocr_turned_off_a_scan_is_refused_with_the_ocr_it_first_message(
    tmp_path: Path,
) -> None:
    path = make.write_scanned_pdf(tmp_path / "scan.pdf", [PAGE_ONE])

    error = make.refusal(path, options=ocr(enabled=False))

    assert isinstance(error, NoExtractableText)
    assert error.message == "scan.pdf has no text layer: this looks like a scan; OCR it first."
    assert error.hint is not None and "KB_OCR_ENABLED" in error.hint


def test_a_missing_language_pack_names_the_debian_package_to_install(tmp_path: Path) -> None:
    if "tlh" in installed_languages():
        pytest.skip("Klingon is installed after all")
    path = make.write_scanned_pdf(tmp_path / "scan.pdf", [PAGE_ONE])

    error = make.refusal(path, options=ocr("eng+tlh"))

    assert isinstance(error, OcrUnavailable)
    assert error.message == (
        "scan.pdf needs OCR (1 page without a text layer), but tesseract's language data "
        "for tlh is not installed."
    )
    assert error.hint is not None and "apt-get install tesseract-ocr-tlh" in error.hint


def test_without_tesseract_the_error_says_what_to_install(tmp_path: Path) -> None:
    # A real run without tesseract: a child process whose PATH does not lead to it.
    path = make.write_scanned_pdf(tmp_path / "scan.pdf", [PAGE_ONE])
    result = run_python(
        f"""
        import os
        os.environ["PATH"] = "/nonexistent"
        from ingest.errors import OcrUnavailable
        from ingest.loaders import load_file
        try:
            load_file({str(path)!r})
        except OcrUnavailable as error:
            print(error)
        """,
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "scan.pdf needs OCR (1 page without a text layer), but tesseract is not installed. "
        "Ask an administrator to install tesseract (Debian/Ubuntu: apt-get install "
        "tesseract-ocr tesseract-ocr-eng), or upload a copy with a text layer."
    )


def test_a_mixed_pdf_without_the_ocr_language_keeps_its_text_pages(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if "tlh" in installed_languages():
        pytest.skip("Klingon is installed after all")
    path = make.write_pdf(tmp_path / "mixed.pdf", ["Typed page.", make.text_image(PAGE_TWO)])

    documents = load_file(path, options=ocr("tlh"))

    assert [d.metadata["page"] for d in documents] == [1]
    assert "tesseract-ocr-tlh" in caplog.text
