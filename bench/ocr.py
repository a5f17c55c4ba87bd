"""OCR throughput and accuracy: a scanned PDF read through kb's loader against the text
layer of the original it was scanned from.

    python bench/ocr.py /work/shared/docs/federal-register-p1-2-scanned-image-only.pdf \\
        --reference /work/shared/docs/federal-register-2020-17221.pdf --pages 1-2

Prints, for the whole scan loaded by `ingest.loaders.load_file` (render + tesseract +
clean-up, exactly what an upload does):
- pages/s (wall clock) and tesseract CPU seconds per page (less sensitive to a busy
  machine than wall clock), with the load average before and after;
- word recall: the share of the words of the reference pages' text layer (pypdf) found
  in the OCR text, counted with multiplicity (a word the reference has 5 times must
  appear 5 times), case-folded, punctuation ignored; target >= 0.95;
- the same per page, and the share of distinct words.
`--jobs` and `--dpi` override the OCR settings (default: the defaults of `OcrOptions`).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

# Run as a script, this file's folder is first on sys.path and its name would shadow
# the `ingest` package: drop that folder before importing the project.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from pypdf import PdfReader  # noqa: E402

from ingest.loaders import LoadOptions, load_file  # noqa: E402
from ingest.loaders.options import OcrOptions  # noqa: E402

_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> Counter[str]:
    return Counter(match.group().casefold() for match in _WORD.finditer(text))


def recall(reference: Counter[str], found: Counter[str]) -> float:
    total = sum(reference.values())
    return sum(min(n, found[w]) for w, n in reference.items()) / total if total else 0.0


def page_range(spec: str) -> list[int]:
    pages: list[int] = []
    for piece in spec.split(","):
        first, _, last = piece.partition("-")
        pages.extend(range(int(first), int(last or first) + 1))
    return pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scan", type=Path, help="a PDF without a text layer")
    parser.add_argument("--reference", type=Path, required=True, help="the original PDF")
    parser.add_argument("--pages", default="1-2", help="pages of the original the scan shows")
    parser.add_argument("--languages", default=OcrOptions.languages)
    parser.add_argument("--dpi", type=int, default=OcrOptions.dpi)
    parser.add_argument("--jobs", type=int, default=OcrOptions.jobs)
    args = parser.parse_args()

    options = LoadOptions(
        ocr=replace(OcrOptions(), languages=args.languages, dpi=args.dpi, jobs=args.jobs)
    )
    load_before = os.getloadavg()[0]
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    documents = load_file(args.scan, options=options)
    elapsed = time.perf_counter() - started
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_after = os.getloadavg()[0]
    tesseract_cpu = (children_after.ru_utime + children_after.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    ocr_pages = [d for d in documents if d.metadata.get("ocr")]
    pages = len(ocr_pages)

    reader = PdfReader(args.reference)
    wanted = page_range(args.pages)
    references = {n: reader.pages[n - 1].extract_text() or "" for n in wanted}

    print(f"scan: {args.scan.name} ({pages} pages OCR'd, {len(documents)} documents)")
    print(f"settings: languages={args.languages} dpi={args.dpi} jobs={args.jobs}")
    print(f"load average: {load_before:.2f} before, {load_after:.2f} after ({os.cpu_count()} CPUs)")
    print(f"time: {elapsed:.1f} s -> {pages / elapsed:.3f} pages/s")
    print(f"tesseract CPU: {tesseract_cpu:.1f} s ({tesseract_cpu / max(pages, 1):.1f} s/page)")
    ocr_text = "\n".join(d.page_content for d in documents)
    all_reference = words("\n".join(references.values()))
    found = words(ocr_text)
    for position, number in enumerate(wanted, start=1):
        scanned = next((d for d in documents if d.metadata.get("page") == position), None)
        page_words = words(scanned.page_content if scanned else "")
        print(
            f"page {number}: word recall {recall(words(references[number]), page_words):.4f} "
            f"({sum(words(references[number]).values())} words)"
        )
    distinct = len(set(all_reference) & set(found)) / max(len(all_reference), 1)
    total = recall(all_reference, found)
    print(f"word recall, pages {args.pages}: {total:.4f} of {sum(all_reference.values())} words")
    print(f"distinct words found: {distinct:.4f}")
    print(f"target >= 0.95: {'met' if total >= 0.95 else 'NOT met'}")


if __name__ == "__main__":
    main()
