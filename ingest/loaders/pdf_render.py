"""PDF pages as greyscale images for OCR (pypdfium2, PDFium's rendering).

PDFium is not thread-safe, not even across separate documents, and the chat ingests
uploads in worker threads: every call into it holds one process-wide lock.
"""

from __future__ import annotations

import math
import threading
from types import TracebackType

import pypdfium2 as pdfium
from PIL import Image

__all__ = ["PdfPages", "RenderError"]

_PDFIUM = threading.Lock()
# A page is rendered at the requested dpi unless that exceeds this many pixels (a poster
# at 300 dpi is over 100 megapixels); text that large reads fine at a lower resolution.
MAX_PIXELS = 40_000_000

RenderError = pdfium.PdfiumError


class PdfPages:
    """An open PDF whose pages (1-based) can be checked and rendered; use as a context."""

    def __init__(self, data: bytes) -> None:
        with _PDFIUM:
            # An empty password opens owner-password-only PDFs, as pypdf does.
            self._document = pdfium.PdfDocument(data, password="")

    def __enter__(self) -> PdfPages:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with _PDFIUM:
            self._document.close()

    def __len__(self) -> int:
        with _PDFIUM:
            return len(self._document)

    def is_blank(self, number: int) -> bool:
        """True when the page draws nothing at all (nothing to OCR)."""
        with _PDFIUM:
            page = self._document[number - 1]
            try:
                return next(iter(page.get_objects(max_depth=1)), None) is None
            finally:
                page.close()

    def render(self, number: int, *, dpi: int) -> tuple[Image.Image, int]:
        """The page in greyscale and the dpi it was rendered at (lowered for huge pages)."""
        with _PDFIUM:
            page = self._document[number - 1]
            try:
                width, height = page.get_size()  # points, 1/72 inch
                pixels = width * height * (dpi / 72) ** 2
                if pixels > MAX_PIXELS:
                    dpi = max(72, int(dpi * math.sqrt(MAX_PIXELS / pixels)))
                bitmap = page.render(scale=dpi / 72, grayscale=True)
                # to_pil() shares the bitmap's buffer, which close() frees.
                image = bitmap.to_pil().copy()
                bitmap.close()
            finally:
                page.close()
        return image, dpi
