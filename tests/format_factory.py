"""Writes real PPTX, XLSX, EPUB, EML and mbox files at test time, with the libraries that
make them (python-pptx, openpyxl, ebooklib, msoffcrypto-tool, the standard library's
`email` and `mailbox`), and a zip-bomb DOCX. Each writer returns the path it wrote."""

from __future__ import annotations

import io
import mailbox
import zipfile
from collections.abc import Sequence
from datetime import date, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import docx
import msoffcrypto
from ebooklib import epub
from openpyxl import Workbook
from pptx import Presentation
from pptx.util import Inches, Pt

from tests.doc_factory import pdf_bytes

BUDGET_ROWS = 30


def write_pptx(path: Path) -> Path:
    """Five slides: a title slide; bullets with speaker notes; a table; a picture-free
    blank slide; two text boxes in a group placed right-to-left."""
    deck = Presentation()
    deck.core_properties.title = "Quarterly review"
    first = deck.slides.add_slide(deck.slide_layouts[0])
    first.shapes.title.text = "Quarterly review"
    first.placeholders[1].text = "Prepared by the finance team"

    second = deck.slides.add_slide(deck.slide_layouts[1])
    second.shapes.title.text = "Budget"
    body = second.placeholders[1].text_frame
    body.text = "Travel costs fell by 12 percent"
    bullet = body.add_paragraph()
    bullet.text = "Hiring paused until June"
    bullet.level = 1
    second.notes_slide.notes_text_frame.text = "Mention the auditor's remark about invoices."

    third = deck.slides.add_slide(deck.slide_layouts[5])
    third.shapes.title.text = "Headcount"
    table = third.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(6), Inches(1.5)).table
    for row, values in enumerate([("Team", "People"), ("Research", "14"), ("Support", "9")]):
        for column, value in enumerate(values):
            table.cell(row, column).text = value

    deck.slides.add_slide(deck.slide_layouts[6])  # blank: no text, left out

    fifth = deck.slides.add_slide(deck.slide_layouts[6])
    group = fifth.shapes.add_group_shape()
    right = group.shapes.add_textbox(Inches(5), Inches(1), Inches(3), Inches(1))
    right.text_frame.text = "Second column: llama fodder"
    left = group.shapes.add_textbox(Inches(1), Inches(1), Inches(3), Inches(1))
    left.text_frame.text = "First column: alpaca fleece"
    left.text_frame.paragraphs[0].runs[0].font.size = Pt(20)
    deck.save(str(path))
    return path


def write_blank_pptx(path: Path, *, slides: int) -> Path:
    deck = Presentation()
    for _ in range(slides):
        deck.slides.add_slide(deck.slide_layouts[6])
    deck.save(str(path))
    return path


def write_xlsx(path: Path) -> Path:
    """Sheet "Budget" (header + BUDGET_ROWS rows: text, numbers, dates), sheet "Notes"
    (one row), and an empty sheet."""
    workbook = Workbook()
    workbook.properties.title = "Budget 2024"
    budget = workbook.active
    assert budget is not None
    budget.title = "Budget"
    budget.append(["Item", "Amount", "Due", None, "Owner"])
    for number in range(1, BUDGET_ROWS + 1):
        budget.append([f"Item {number}", number * 2.5, date(2024, 1, number % 28 + 1), None, "Ana"])
    notes = workbook.create_sheet("Notes")
    notes.append(["Approved by the board on", datetime(2024, 3, 5, 14, 30)])
    workbook.create_sheet("Empty")
    workbook.save(str(path))
    return path


def write_empty_xlsx(path: Path) -> Path:
    workbook = Workbook()
    workbook.create_sheet("Second")
    workbook.save(str(path))
    return path


def write_encrypted_xlsx(path: Path, *, password: str = "secret") -> Path:
    """An XLSX protected with a password to open (Office's agile encryption)."""
    plain = io.BytesIO()
    write_xlsx(path)
    plain.write(path.read_bytes())
    plain.seek(0)
    office = msoffcrypto.OfficeFile(plain)
    with path.open("wb") as handle:
        office.encrypt(password, handle)
    return path


def write_epub(path: Path) -> Path:
    """Two chapters listed in the table of contents, one unlisted with a heading, and a
    navigation document in the spine."""
    book = epub.EpubBook()
    book.set_identifier("kb-test-book")
    book.set_title("Field Notes from the Andes")
    book.set_language("en")
    book.add_author("A. Writer")
    chapters = [
        (
            "chap_01.xhtml",
            "Down the Valley",
            "<h1>Down the Valley</h1><p>The herd moved at dawn.</p>",
        ),
        ("chap_02.xhtml", "Shearing Season", "<h2>Shearing</h2><p>Fleece is sorted by micron.</p>"),
        ("chap_03.xhtml", None, "<h2>Afterword</h2><p>Thanks to every farmer we met.</p>"),
    ]
    items = []
    for file_name, title, html in chapters:
        item = epub.EpubHtml(title=title or "Afterword", file_name=file_name, lang="en")
        item.content = f"<html><body>{html}</body></html>"
        book.add_item(item)
        items.append(item)
    book.toc = [
        epub.Link("chap_01.xhtml", "Down the Valley", "c1"),
        epub.Link("chap_02.xhtml#start", "Shearing Season", "c2"),
    ]
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *items]
    epub.write_epub(str(path), book)
    return path


def write_drm_epub(path: Path) -> Path:
    """An EPUB whose META-INF/encryption.xml says its first chapter is AES-encrypted."""
    write_epub(path)
    encryption = (
        '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
        'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
        '<enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>'
        '<enc:CipherData><enc:CipherReference URI="EPUB/chap_01.xhtml"/></enc:CipherData>'
        "</enc:EncryptedData></encryption>"
    )
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("META-INF/encryption.xml", encryption)
    return path


def mail(
    subject: str,
    body: str,
    *,
    html: str | None = None,
    attachments: Sequence[tuple[str, bytes, str]] = (),
    sender: str = "Ana Lima <ana@example.org>",
) -> EmailMessage:
    """A message; attachments are (file name, bytes, MIME type)."""
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = "team@example.org"
    message["Date"] = format_datetime(datetime(2024, 3, 5, 9, 30).astimezone())
    message["Message-ID"] = f"<{abs(hash(subject))}@example.org>"
    message.set_content(body)
    if html is not None:
        message.add_alternative(html, subtype="html")
    for name, data, mime in attachments:
        maintype, subtype = mime.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return message


def write_eml(path: Path, message: EmailMessage) -> Path:
    path.write_bytes(bytes(message))
    return path


def write_mbox(path: Path, messages: Sequence[EmailMessage]) -> Path:
    box = mailbox.mbox(str(path))
    try:
        for message in messages:
            box.add(message)
        box.flush()
    finally:
        box.close()
    return path


def report_pdf_bytes() -> bytes:
    return pdf_bytes(["The pump inspection found two worn gaskets.", "Order spares by May."])


def write_zip_bomb_docx(path: Path, *, expanded_mib: int = 1024) -> Path:
    """A valid DOCX whose word/document.xml is `expanded_mib` MiB of zeros (about 1 MB
    on disk for 1 GiB): python-docx would read the whole member into memory."""
    plain = io.BytesIO()
    docx.Document().save(plain)
    zeros = bytes(2**20)
    with (
        zipfile.ZipFile(plain) as source,
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bomb,
    ):
        for info in source.infolist():
            if info.filename != "word/document.xml":
                bomb.writestr(info.filename, source.read(info))
        with bomb.open("word/document.xml", "w", force_zip64=True) as member:
            for _ in range(expanded_mib):
                member.write(zeros)
    return path
