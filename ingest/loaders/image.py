"""PNG, JPEG and TIFF: text by OCR (tesseract); each frame of a multi-page TIFF is a page.

Phone photos are turned upright by their EXIF orientation, and transparent areas become
white (not black) before OCR.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from ingest.errors import CorruptFile, FileTooLarge, NoExtractableText
from ingest.loaders.normalise import normalise_text
from ingest.loaders.ocr import ocr_pages
from ingest.loaders.options import LoadContext
from ingest.loaders.source import Extracted, Part, SourceFile

__all__ = ["load_image"]

# Beyond this an image is a poster or a decompression bomb, not a page to read: an A4
# page scanned at 600 dpi is 35 megapixels.
MAX_PIXELS = 120_000_000
_OPEN_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError)


def load_image(source: SourceFile, context: LoadContext) -> Extracted:
    name = source.name
    options = context.options.ocr
    try:
        image = Image.open(io.BytesIO(source.data))
        width, height = image.size
        frames = int(getattr(image, "n_frames", 1))
    except Image.DecompressionBombError:
        raise _too_large(name, None) from None
    except _OPEN_ERRORS as exc:
        raise CorruptFile(
            f"{name} is not a readable image ({type(exc).__name__}: {str(exc)[:120]}).",
            file_name=name,
        ) from None
    if width * height > MAX_PIXELS:
        raise _too_large(name, (width, height))
    if not options.enabled:
        raise NoExtractableText(
            f"{name} is an image, and OCR is turned off, so its text cannot be read.",
            file_name=name,
            hint="Ask an administrator to turn OCR on (KB_OCR_ENABLED=true), or upload a "
            "PDF or document with a text layer.",
        )

    def render(number: int) -> tuple[Image.Image, int | None]:
        try:
            image.seek(number - 1)
            return _for_ocr(image), _dpi(image.info)
        except _OPEN_ERRORS as exc:
            raise CorruptFile(
                f"{name} is damaged: frame {number} cannot be decoded ({str(exc)[:120]}).",
                file_name=name,
            ) from None

    numbers = list(range(1, frames + 1))
    with image:
        read = ocr_pages(
            numbers,
            render,
            name=name,
            options=options,
            progress=context.progress,
            why="it is an image",
        )
    parts = [
        Part(text, {"page": number, "location": f"page {number}"} if frames > 1 else {})
        for number in numbers
        if read[number].has_text and (text := normalise_text(read[number].text))
    ]
    if not parts:
        raise NoExtractableText(
            f"{name} shows no recognisable text (OCR found none).",
            file_name=name,
            hint="If it does show text, upload a sharper, straight-on picture (about 300 dpi), "
            "or check that KB_OCR_LANGUAGES names its language.",
        )
    metadata: dict[str, Any] = {"ocr": True, "width": width, "height": height}
    if frames > 1:
        metadata["pages"] = frames
    return Extracted(parts=parts, metadata=metadata)


def _for_ocr(image: Image.Image) -> Image.Image:
    upright = ImageOps.exif_transpose(image)
    if upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info:
        rgba = upright.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        upright = Image.alpha_composite(white, rgba)
    return upright.convert("L")


def _dpi(info: Mapping[Any, Any]) -> int | None:
    """The image's stated resolution when plausible (many files say 72 or nothing)."""
    value = info.get("dpi")
    try:
        dpi = round(float(value[0])) if value else 0
    except (TypeError, ValueError, IndexError):
        return None
    return dpi if 100 <= dpi <= 1200 else None


def _too_large(name: str, size: tuple[int, int] | None) -> FileTooLarge:
    what = f" ({size[0]:,} x {size[1]:,} pixels)" if size else ""
    return FileTooLarge(
        f"{name} is too large an image to read{what}; the limit is "
        f"{MAX_PIXELS // 1_000_000} megapixels.",
        file_name=name,
        hint="Scale it down (300 dpi is enough for text) or split it, then upload it again.",
    )
