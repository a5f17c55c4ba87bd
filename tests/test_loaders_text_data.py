"""load_file on plain text, CSV and JSON: encodings, records, metadata and refusals.

Pure tests (no database): each builds its files at test time with tests/doc_factory.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.errors import (
    CorruptFile,
    EmptyFile,
    UnsupportedFile,
)
from ingest.loaders import load_file
from tests import doc_factory as make
from tests.doc_factory import refusal

PAGES = [
    "Alpha page: the pump runs at 40 bar.",
    "Beta page: the valve opens at noon.",
    "Gamma page: the gasket is rubber.",
]


# --- Plain text ---------------------------------------------------------------------


def test_utf16_text_with_a_bom_is_decoded(tmp_path: Path) -> None:
    path = make.write_text(
        tmp_path / "notes.txt", "\ufeffGrüße aus Köln\r\nZeile zwei", encoding="utf-16-le"
    )

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


def test_utf8_with_a_stray_windows_1252_byte_keeps_both_readings(tmp_path: Path) -> None:
    path = tmp_path / "pasted.txt"
    path.write_bytes(("Grüße aus Köln € " * 20).encode() + b"\x96 dash " + "café".encode())

    documents = load_file(path)

    assert documents[0].page_content.endswith("Grüße aus Köln € – dash café")
    assert documents[0].metadata["encoding"] == "utf-8+cp1252"


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
    assert error.message == "photo.txt is not text: its content is a PNG image."
    assert error.hint == "Rename it to photo.png and upload it again."  # PNGs are OCR'd


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
        (2, 26),
        (27, 51),
        (52, 61),
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


def test_csv_blank_lines_before_the_header_are_skipped(tmp_path: Path) -> None:
    documents = load_file(make.write_text(tmp_path / "gap.csv", "\n\na,b\n1,2\n"))

    assert documents[0].page_content == "Columns: a, b\na: 1; b: 2"
    assert (documents[0].metadata["line_start"], documents[0].metadata["line_end"]) == (4, 4)


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
    data = {
        "title": "Pump config",
        "server": {"host": "pump-1", "ports": [80, 443], "tls": True, "proxy": None},
        "owners": [{"name": "Ana"}, {"name": "Bo"}],
    }

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
        (1, 25),
        (26, 30),
    ]


def test_json_lines_are_records(tmp_path: Path) -> None:
    path = make.write_text(tmp_path / "events.jsonl", '{"event": "start"}\n\n{"event": "stop"}\n')

    assert load_file(path)[0].page_content == "event: start\nevent: stop"


def test_json_lines_saved_as_json_are_read_as_records(tmp_path: Path) -> None:
    path = make.write_text(tmp_path / "events.json", '{"event": "start"}\n{"event": "stop"}\n')

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
