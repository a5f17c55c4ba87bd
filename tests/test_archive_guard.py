"""Zip bombs (DOCX, XLSX, PPTX, EPUB) are refused from the zip's directory, before any
member is decompressed: a clear message and no memory spent, even several at once."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import tests.doc_factory as make
import tests.format_factory as office
from ingest.errors import PossibleZipBomb
from ingest.loaders import LoadOptions, load_file
from ingest.loaders.options import ArchiveLimits
from tests.cli import run_python

MiB = 2**20


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1 MB DOCX holding 1 GiB of zeros (written once: deflating 1 GiB takes seconds)."""
    return office.write_zip_bomb_docx(tmp_path_factory.mktemp("bomb") / "bomb.docx")


@dataclass(frozen=True)
class Refusals:
    errors: list[str]
    peak_growth: int  # bytes: peak RSS after minus peak RSS before
    rss_growth: int  # bytes: RSS after minus RSS before (psutil)


def refuse_in_a_fresh_process(paths: list[Path], cwd: Path) -> Refusals:
    """Load each path in its own thread, all at once, in a new Python process, and report
    the refusals and how far the process's memory grew (peak RSS, and RSS by psutil)."""
    result = run_python(
        f"""
        import json, resource, threading
        import psutil
        from ingest.errors import IngestError
        from ingest.loaders import load_file

        paths = {[str(p) for p in paths]!r}
        process = psutil.Process()
        rss_before = process.memory_info().rss
        peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        errors = []

        def refuse(path):
            try:
                load_file(path)
            except IngestError as error:
                errors.append(error.message)

        threads = [threading.Thread(target=refuse, args=(p,)) for p in paths]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(json.dumps({{
            "errors": sorted(errors),
            "peak_growth": peak_after - peak_before,
            "rss_growth": process.memory_info().rss - rss_before,
        }}))
        """,
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr
    return Refusals(**json.loads(result.stdout))


def test_a_docx_expanding_to_1_gib_is_refused_with_a_clear_message(bomb: Path) -> None:
    assert bomb.stat().st_size < 2 * MiB

    error = make.refusal(bomb)

    assert isinstance(error, PossibleZipBomb)
    assert error.message.startswith("bomb.docx expands to 1.0 GiB (ratio ")
    assert error.message.endswith("; refused as a possible zip bomb.")
    assert error.hint is not None and "KB_ARCHIVE_MAX_EXPANDED_MB" in error.hint


def test_refusing_a_zip_bomb_costs_under_200_mb_of_memory(bomb: Path, tmp_path: Path) -> None:
    report = refuse_in_a_fresh_process([bomb], tmp_path)

    assert len(report.errors) == 1
    assert report.errors[0].startswith("bomb.docx expands to 1.0 GiB")
    assert report.peak_growth < 200 * MiB
    assert report.rss_growth < 200 * MiB


def test_three_zip_bombs_at_once_stay_under_200_mb(bomb: Path, tmp_path: Path) -> None:
    copies = []
    for name in ("one.docx", "two.docx", "three.docx"):
        copies.append(tmp_path / name)
        shutil.copyfile(bomb, copies[-1])

    report = refuse_in_a_fresh_process(copies, tmp_path)

    assert [e.split(" ")[0] for e in report.errors] == ["one.docx", "three.docx", "two.docx"]
    assert all(e.endswith("refused as a possible zip bomb.") for e in report.errors)
    assert report.peak_growth < 200 * MiB


def test_a_dense_archive_is_refused_by_its_ratio_below_the_size_limit(tmp_path: Path) -> None:
    path = office.write_zip_bomb_docx(tmp_path / "dense.docx", expanded_mib=64)

    error = make.refusal(path)

    assert isinstance(error, PossibleZipBomb)
    assert error.message.startswith("dense.docx expands to 64.")
    assert "the limit is 100:1" in error.message


@pytest.mark.parametrize(
    ("name", "writer"),
    [
        ("file.docx", make.write_docx),
        ("file.xlsx", office.write_xlsx),
        ("file.pptx", office.write_pptx),
        ("file.epub", office.write_epub),
    ],
)
def test_each_zip_format_is_checked_against_the_configured_limits(
    tmp_path: Path, name: str, writer: Callable[[Path], Path]
) -> None:
    path = writer(tmp_path / name)
    strict = LoadOptions(archive=ArchiveLimits(max_members=3))

    assert load_file(path)  # the defaults admit ordinary files
    error = make.refusal(path, options=strict)

    assert isinstance(error, PossibleZipBomb)
    assert error.message.startswith(f"{name} holds ")
    assert error.message.endswith(
        "archive members (the limit is 3); refused as a possible zip bomb."
    )
