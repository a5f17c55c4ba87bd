"""Run the tesseract OCR engine (Debian's `tesseract-ocr`) on one image.

Why not pytesseract: it starts tesseract with the parent's environment as is, and gives
no way to set `OMP_THREAD_LIMIT=1` for the child alone. Tesseract's OpenMP threads
spin against each other and everything else on a busy machine: on this project's
2-core box one page took 31 s with the default threads and 10 s single-threaded
(CPU time 12.5 s vs 5.1 s). Setting the variable in our own process would also cap
PyTorch's threads. So tesseract runs here directly: the image goes in on stdin as an
uncompressed greyscale PGM (no temporary files, no PNG encoding), TSV comes out on
stdout, and pages run side by side in separate single-threaded processes instead.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
from dataclasses import dataclass

from PIL import Image

from ingest.errors import OcrUnavailable

__all__ = ["OcrText", "check_installed", "recognise"]

TESSERACT = "tesseract"
# A word counts towards "this page has text" at this confidence (0-100) with at least
# two letters or digits; junk read from pictures rarely gets there.
_SURE_CONFIDENCE = 60.0
_LANGUAGE = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass(frozen=True)
class OcrText:
    """What tesseract read on one image: the text and how many words it was sure of."""

    text: str
    words: int
    sure_words: int
    mean_confidence: float

    @property
    def has_text(self) -> bool:
        return self.sure_words > 0


def check_installed(languages: str, *, file_name: str, why: str) -> None:
    """Raise OcrUnavailable unless tesseract runs and has every language in `languages`.

    `why` says what needs OCR ("3 pages without a text layer") for the message.
    """
    wanted = language_list(languages)
    try:
        result = subprocess.run(
            [TESSERACT, "--list-langs"], capture_output=True, text=True, check=False
        )
    except OSError:
        raise OcrUnavailable(
            f"{file_name} needs OCR ({why}), but tesseract is not installed.",
            file_name=file_name,
            hint="Ask an administrator to install tesseract (Debian/Ubuntu: apt-get install "
            f"tesseract-ocr {' '.join(map(_package, wanted))}), or upload a copy with a "
            "text layer.",
        ) from None
    # The first line is a heading ("List of available languages in ...").
    installed = {line.strip() for line in result.stdout.splitlines()[1:] if line.strip()}
    missing = [lang for lang in wanted if lang not in installed]
    if result.returncode != 0 or missing:
        what = ", ".join(missing) if missing else languages
        raise OcrUnavailable(
            f"{file_name} needs OCR ({why}), but tesseract's language data for {what} "
            "is not installed.",
            file_name=file_name,
            hint="Ask an administrator to install it (Debian/Ubuntu: apt-get install "
            f"{' '.join(map(_package, missing or wanted))}), or to set KB_OCR_LANGUAGES to "
            f"installed ones ({', '.join(sorted(installed - {'osd'})) or 'none'}).",
        )


def language_list(languages: str) -> list[str]:
    """Language codes from "eng+deu", "eng,deu" or "eng deu"; invalid names are refused."""
    names = [part for part in re.split(r"[+,\s]+", languages) if part]
    bad = [name for name in names if not _LANGUAGE.match(name)]
    if bad or not names:
        raise ValueError(f"invalid OCR language list {languages!r}")
    return names


def recognise(image: Image.Image, languages: str, *, dpi: int | None = None) -> OcrText:
    """Tesseract's reading of `image` (any mode; greyscale is what it uses anyway)."""
    grey = image if image.mode == "L" else image.convert("L")
    buffer = io.BytesIO()
    grey.save(buffer, format="PPM")  # mode L: binary PGM, which leptonica reads from stdin
    command = [TESSERACT, "stdin", "stdout", "-l", "+".join(language_list(languages))]
    if dpi:
        command += ["--dpi", str(dpi)]  # PGM carries no resolution; don't make it guess
    command.append("tsv")
    try:
        result = subprocess.run(
            command,
            input=buffer.getvalue(),
            capture_output=True,
            check=False,
            env=_single_threaded(),
        )
    except OSError as exc:
        raise RuntimeError(f"tesseract could not be started: {exc}") from None
    if result.returncode != 0:
        detail = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError(f"tesseract failed: {detail[-1] if detail else result.returncode}")
    return _parse_tsv(result.stdout.decode("utf-8", "replace"))


def _single_threaded() -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_THREAD_LIMIT"] = "1"
    return env


def _parse_tsv(tsv: str) -> OcrText:
    """Words back into lines and paragraphs, in tesseract's reading order."""
    lines: list[str] = []
    current: list[str] = []
    line_key: tuple[str, ...] | None = None
    paragraph_key: tuple[str, ...] | None = None
    confidences: list[float] = []
    sure = 0
    for row in tsv.splitlines()[1:]:
        fields = row.split("\t")
        if len(fields) < 12 or fields[0] != "5":  # level 5 = a word
            continue
        text = fields[11].strip()
        try:
            confidence = float(fields[10])
        except ValueError:
            continue
        # Low-confidence words are kept: on the Federal Register scan, dropping those
        # under 20 lost 1% of the real words (numbers mostly) and no junk.
        if not text or confidence < 0:
            continue
        confidences.append(confidence)
        if confidence >= _SURE_CONFIDENCE and sum(ch.isalnum() for ch in text) >= 2:
            sure += 1
        key = tuple(fields[1:5])  # page, block, paragraph, line
        if key != line_key:
            if current:
                lines.append(" ".join(current))
            if paragraph_key is not None and key[:3] != paragraph_key:
                lines.append("")
            current, line_key, paragraph_key = [], key, key[:3]
        current.append(text)
    if current:
        lines.append(" ".join(current))
    mean = sum(confidences) / len(confidences) if confidences else 0.0
    return OcrText("\n".join(lines), len(confidences), sure, mean)


def _package(language: str) -> str:
    return "tesseract-ocr-" + language.lower().replace("_", "-")
