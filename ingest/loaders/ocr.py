"""OCR of several page images for one file: `jobs` tesseract processes at once, in order.

Pages are produced one at a time by the caller's `render` (PDF rendering is not
thread-safe) and only `jobs` of them are held at once, so a 500-page scan never sits
in memory. Progress is reported per finished page from the calling thread.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from PIL import Image

from ingest.loaders.options import OcrOptions, Progress
from ingest.loaders.tesseract import OcrText, check_installed, recognise

__all__ = ["ocr_pages"]


def ocr_pages(
    numbers: Sequence[int],
    render: Callable[[int], tuple[Image.Image, int | None]],
    *,
    name: str,
    options: OcrOptions,
    progress: Progress,
    why: str,
) -> dict[int, OcrText]:
    """Page number -> what tesseract read, for each of `numbers`.

    `render(number)` gives the page's image and its resolution in dpi (None: unknown).

    Raises OcrUnavailable before any rendering when tesseract or a language is missing.
    """
    if not numbers:
        return {}
    check_installed(options.languages, file_name=name, why=why)
    results: dict[int, OcrText] = {}
    pending: deque[tuple[int, Future[OcrText]]] = deque()
    total = len(numbers)

    def finish_oldest() -> None:
        number, future = pending.popleft()
        results[number] = future.result()
        progress(f"OCR {name}: {len(results)}/{total} pages")

    jobs = max(1, options.jobs)
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="kb-ocr") as pool:
        try:
            for number in numbers:
                image, dpi = render(number)
                pending.append((number, pool.submit(recognise, image, options.languages, dpi=dpi)))
                if len(pending) >= jobs:
                    finish_oldest()
            while pending:
                finish_oldest()
        finally:
            for _, future in pending:
                future.cancel()
    return results
