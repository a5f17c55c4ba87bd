"""Writes real documents at test time: PDFs (fpdf2, pypdf), DOCX (python-docx), text files.

Each writer takes the target path, writes the file and returns the path, so a test
reads as `load_file(write_pdf(tmp_path / "report.pdf", [...]))`. `refusal` and `text_of`
read the outcome back.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import docx
import pypdfium2 as pdfium
import pytest
from docx.oxml import parse_xml
from docx.oxml.ns import nsdecls
from docx.shared import Inches
from fpdf import FPDF
from langchain_core.documents import Document
from PIL import Image, ImageDraw, ImageFont
from pypdf import PdfReader, PdfWriter
from pypdf.constants import PageLabelStyle, UserAccessPermissions

from ingest.errors import IngestError
from ingest.loaders import load_file


def pdf_bytes(pages: Sequence[str | Image.Image | None], *, title: str | None = None) -> bytes:
    """A PDF with one page per string (core font, so Latin-1 text only); None gives a
    page holding only a picture without any text, an image a full-page "scan" of it."""
    pdf = FPDF()
    if title:
        pdf.set_title(title)
    for content in pages:
        pdf.add_page()
        if content is None:
            pdf.image(_picture(), x=10, y=10, w=180)
        elif isinstance(content, Image.Image):
            pdf.image(content, x=0, y=0, w=pdf.epw + 2 * pdf.l_margin)
        else:
            pdf.set_font("Helvetica", size=12)
            pdf.multi_cell(0, 8, content)
    return bytes(pdf.output())


def write_pdf(
    path: Path, pages: Sequence[str | Image.Image | None], *, title: str | None = None
) -> Path:
    path.write_bytes(pdf_bytes(pages, title=title))
    return path


def write_pdf_with_roman_front_matter(path: Path, pages: Sequence[str], *, roman: int) -> Path:
    """Pages labelled i, ii... for the first `roman` pages, then 1, 2..."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(pages))))
    writer.set_page_label(0, roman - 1, style=PageLabelStyle.LOWERCASE_ROMAN)
    writer.set_page_label(roman, len(pages) - 1, style=PageLabelStyle.DECIMAL, start=1)
    with path.open("wb") as handle:
        writer.write(handle)
    return path


def write_encrypted_pdf(
    path: Path, pages: Sequence[str], *, user_password: str, owner_password: str = "owner-pw"
) -> Path:
    """Encrypted with AES-256; an empty `user_password` gives an owner-only PDF that any
    viewer opens without asking (printing allowed, copying not)."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(pages))))
    writer.encrypt(
        user_password=user_password,
        owner_password=owner_password,
        algorithm="AES-256",
        permissions_flag=UserAccessPermissions.PRINT,
    )
    with path.open("wb") as handle:
        writer.write(handle)
    return path


def write_image_only_pdf(path: Path, *, pages: int = 1) -> Path:
    """Each page is one picture (shapes, no text at all) and there is no text layer."""
    path.write_bytes(pdf_bytes([None] * pages))
    return path


def write_scanned_pdf(path: Path, pages: Sequence[Sequence[str]]) -> Path:
    """A scan: each page is a picture of its lines of text (200 dpi), no text layer."""
    path.write_bytes(pdf_bytes([text_image(lines, dpi=200) for lines in pages]))
    return path


def _picture() -> Image.Image:
    image = Image.new("L", (400, 300), color=255)
    draw = ImageDraw.Draw(image)
    draw.ellipse((40, 40, 200, 200), outline=0, width=6)
    draw.rectangle((230, 80, 360, 260), fill=120)
    draw.line((20, 280, 380, 20), fill=0, width=4)
    return image


def text_image(
    lines: Sequence[str], *, dpi: int = 200, width_inches: float = 8.27, mode: str = "L"
) -> Image.Image:
    """A page-wide picture of `lines` in a 14 pt sans-serif font (Pillow's bundled one),
    as a scanner would deliver it at `dpi`."""
    font = ImageFont.load_default(size=round(14 / 72 * dpi))
    line_height = round(24 / 72 * dpi)
    margin = dpi // 2
    size = (round(width_inches * dpi), 2 * margin + line_height * len(lines))
    if mode == "RGBA":  # black text on a transparent background
        image = Image.new("RGBA", size, (0, 0, 0, 0))
        fill: Any = (0, 0, 0, 255)
    else:
        image = Image.new(mode, size, "white")
        fill = "black"
    draw = ImageDraw.Draw(image)
    for number, line in enumerate(lines):
        draw.text((margin, margin + number * line_height), line, fill=fill, font=font)
    image.info["dpi"] = (dpi, dpi)
    return image


def typeset_image(lines: Sequence[str], *, dpi: int = 200) -> Image.Image:
    """A picture of `lines` set in Helvetica by a PDF writer and rasterised (PDFium): any
    Latin-1 text, umlauts and ß included, which Pillow's bundled font lacks."""
    document = pdfium.PdfDocument(pdf_bytes(["\n".join(lines)]))
    try:
        bitmap = document[0].render(scale=dpi / 72, grayscale=True)
        image = bitmap.to_pil().copy()
    finally:
        document.close()
    image.info["dpi"] = (dpi, dpi)
    return image


def write_image(path: Path, images: Sequence[Image.Image]) -> Path:
    """PNG, JPEG or TIFF by the suffix; several images make a multi-page TIFF."""
    first, *rest = images
    dpi = first.info.get("dpi", (200, 200))
    if path.suffix.lower() in (".jpg", ".jpeg"):
        first.convert("RGB").save(path, "JPEG", quality=90, dpi=dpi)
    elif path.suffix.lower() in (".tif", ".tiff"):
        first.save(path, "TIFF", save_all=True, append_images=rest, dpi=dpi)
    else:
        first.save(path, "PNG", dpi=dpi)
    return path


def write_truncated(path: Path, data: bytes, *, keep: float = 0.4) -> Path:
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def write_docx(path: Path, *, title: str | None = "Field Guide") -> Path:
    """Headings, body text, a bulleted item, a plain table, a nested table, merged cells."""
    document = docx.Document()
    if title:
        document.core_properties.title = title
    document.add_heading("Setup", level=1)
    document.add_paragraph("Install the pump before the first frost.")
    document.add_heading("Tools", level=2)
    document.add_paragraph("A torque wrench set to 40 Nm.", style="List Bullet")

    table = document.add_table(rows=3, cols=2)
    for row, values in zip(
        table.rows, [("Part", "Stock"), ("Valve", "12"), ("Gasket", "7")], strict=True
    ):
        for cell, value in zip(row.cells, values, strict=True):
            cell.text = value

    outer = document.add_table(rows=1, cols=2)
    outer.cell(0, 0).text = "Spare kit"
    nested = outer.cell(0, 1).add_table(rows=2, cols=2)
    for (r, c), value in {(0, 0): "bolt", (0, 1): "M8", (1, 0): "nut", (1, 1): "M10"}.items():
        nested.cell(r, c).text = value

    merged = document.add_table(rows=2, cols=3)
    merged.cell(0, 0).merge(merged.cell(0, 2)).text = "Quarterly totals"
    for cell, value in zip(merged.rows[1].cells, ("Q1", "Q2", "Q3"), strict=True):
        cell.text = value
    document.add_paragraph("Closing remark after the tables.")
    document.save(str(path))
    return path


def write_docx_with_revisions(path: Path) -> Path:
    """Text Word keeps outside plain runs: a tracked insertion and deletion, a field
    (code and result), and a text box written twice (mc:Choice and mc:Fallback)."""
    document = docx.Document()
    document.add_paragraph("First paragraph.")
    revised = parse_xml(
        f'<w:p {nsdecls("w")}><w:r><w:t xml:space="preserve">Kept </w:t></w:r>'
        '<w:ins w:id="1" w:author="Ana"><w:r><w:t>inserted</w:t></w:r></w:ins>'
        '<w:del w:id="2" w:author="Ana"><w:r><w:delText>deleted</w:delText></w:r></w:del>'
        '<w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText>PAGE</w:instrText></w:r>'
        '<w:r><w:fldChar w:fldCharType="separate"/></w:r><w:r><w:t xml:space="preserve"> 7'
        '</w:t></w:r><w:r><w:fldChar w:fldCharType="end"/></w:r></w:p>'
    )
    box = "<w:txbxContent><w:p><w:r><w:t>Boxed note</w:t></w:r></w:p></w:txbxContent>"
    boxed = parse_xml(
        f'<w:p {nsdecls("w")} xmlns:mc="{_MC}"><w:r><w:t>Anchor</w:t></w:r><w:r>'
        f'<mc:AlternateContent><mc:Choice Requires="wps"><w:drawing>{box}</w:drawing>'
        f"</mc:Choice><mc:Fallback><w:pict>{box}</w:pict></mc:Fallback></mc:AlternateContent>"
        "</w:r></w:p>"
    )
    last = document.paragraphs[-1]._p
    last.addnext(revised)
    revised.addnext(boxed)
    document.save(str(path))
    return path


_MC = "http://schemas.openxmlformats.org/markup-compatibility/2006"


def write_images_only_docx(path: Path, *, images: int = 2) -> Path:
    document = docx.Document()
    for index in range(images):
        buffer = io.BytesIO()
        Image.new("RGB", (60, 40), color=(index * 80, 90, 160)).save(buffer, "PNG")
        buffer.seek(0)
        document.add_picture(buffer, width=Inches(1))
    document.save(str(path))
    return path


def write_html(path: Path, *, encoding: str = "cp1252", declare: bool = True) -> Path:
    """A page with chrome (nav, footer, script, style) around an article using €, é, ñ."""
    meta = f'<meta charset="{encoding}">' if declare else ""
    page = f"""<!DOCTYPE html>
<html><head>{meta}<title>Café prices – 2024</title>
<style>body {{ color: red; }} .secret-css {{ display: block; }}</style>
<script>var trackingCode = "do-not-index";</script></head>
<body>
<nav><a href="/">Home</a> <a href="/menu">Menu navigation link</a></nav>
<main>
<h1>Our café</h1>
<p>A café au lait costs 3,50 € and the niño menu costs 5 €.</p>
<h2>Opening hours</h2>
<ul><li>Monday to Friday</li><li>Saturday mornings</li></ul>
<table><tr><th>Dish</th><th>Price</th></tr><tr><td>Crêpe</td><td>4 €</td></tr></table>
<div style="display:none">Hidden promotional text</div>
</main>
<footer>Copyright footer text</footer>
<script>console.log("second script")</script>
</body></html>
"""
    path.write_bytes(page.encode(encoding))
    return path


def write_text(path: Path, text: str, *, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def write_csv(path: Path, rows: int = 60, *, delimiter: str = ",") -> Path:
    lines = [delimiter.join(["city", "name", "visitors"])]
    for number in range(1, rows + 1):
        lines.append(
            delimiter.join([f"City{number}", f'"Dr. Savage, No. {number}"', str(number * 10)])
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    return path


def ole_bytes(*, encrypted: bool) -> bytes:
    """The start of an OLE compound file, the container of .doc files and of password-
    protected .docx files (which hold an "EncryptedPackage" stream)."""
    body = bytearray(4096)
    if encrypted:
        marker = "EncryptedPackage".encode("utf-16-le")
        body[1024 : 1024 + len(marker)] = marker
    return b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(body)


def zip_bytes(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), color=(200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def refusal(path: Path, **kwargs: object) -> IngestError:
    """The error load_file raises for `path` (fails the test if it returns documents)."""
    with pytest.raises(IngestError) as caught:
        load_file(path, **kwargs)  # type: ignore[arg-type]
    return caught.value


def text_of(documents: list[Document]) -> str:
    return "\n".join(document.page_content for document in documents)
