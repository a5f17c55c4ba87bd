"""E-mail: `.eml` (one message) and `.mbox` (many), with the standard library's `email`.

A message becomes one part: its Subject, From, To, Cc and Date lines, then the body
(plain text preferred, else the HTML part's text). Attachments of supported types are
read like uploads (same loaders, same checks: OCR, zip-bomb guard) and become parts of
the same source, labelled `attachment` with a `location` such as "attachment
budget.xlsx, sheet Q3, rows 2-26": they belong to the message, so re-uploading or
forgetting the e-mail replaces or removes them with it. Attachments that cannot be
read (unsupported type, damaged, encrypted...) are skipped, and the message's text says
so on a "Not indexed:" line. Inline pictures of an HTML body (logos, signatures) are
not attachments and are left out. In an mbox, each message is located as "message 3:
Subject".
"""

from __future__ import annotations

import mailbox
import mimetypes
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from pathlib import PurePosixPath
from typing import Any, BinaryIO

from ingest.errors import CorruptFile, EmptyFile, IngestError, NoExtractableText, UnsupportedFile
from ingest.loaders.html_page import html_text
from ingest.loaders.normalise import normalise_text, one_line
from ingest.loaders.options import LoadContext
from ingest.loaders.source import Extracted, Part, SourceFile

__all__ = ["load_eml", "load_mbox"]

_HEADERS = ("Subject", "From", "To", "Cc", "Date")
_PARSER = BytesParser(policy=policy.default)
_NOT_MAIL_HINT = "Save the message from your mail program (File > Save as, .eml) and upload that."


def load_eml(source: SourceFile, context: LoadContext) -> Extracted:
    name = source.name
    message = _PARSER.parsebytes(source.data)
    if not any(message.get(header) for header in (*_HEADERS, "Message-ID")):
        raise UnsupportedFile(
            f"{name} is not an e-mail message: it has no From, To, Subject or Date header.",
            file_name=name,
            hint=_NOT_MAIL_HINT,
        )
    mail = _Mail(message, context, label=None)
    if not mail.has_content:
        raise NoExtractableText(
            f"{name} has no subject, no body and no readable attachment.", file_name=name
        )
    metadata: dict[str, Any] = {
        key: value for key, value in mail.headers.items() if key in ("from", "to", "date")
    }
    return Extracted(parts=mail.parts, title=mail.subject or None, metadata=metadata)


def load_mbox(source: SourceFile, context: LoadContext) -> Extracted:
    name = source.name
    if not source.data.startswith(b"From "):
        raise UnsupportedFile(
            f'{name} is not an mbox mailbox: it does not start with a "From " line.',
            file_name=name,
            hint="Export the folder from your mail program as mbox, or save single messages "
            "as .eml, and upload that.",
        )
    box = mailbox.mbox(source.path, factory=_parse_file, create=False)  # type: ignore[arg-type]
    parts: list[Part] = []
    try:
        keys = box.keys()
        for number, key in enumerate(keys, start=1):
            context.progress(f"reading {name}: message {number}/{len(keys)}")
            message = box[key]  # through the factory (get_message ignores it)
            subject = _subject(message)
            label = f"message {number}: {subject}" if subject else f"message {number}"
            parts.extend(_Mail(message, context, label=label).parts)
    except (OSError, ValueError, LookupError) as exc:
        raise CorruptFile(
            f"{name} is not a readable mbox ({type(exc).__name__}: {str(exc)[:120]}).",
            file_name=name,
        ) from None
    finally:
        box.close()
    if not keys:
        raise EmptyFile(f"{name} holds no messages.", file_name=name)
    if not parts:
        raise NoExtractableText(f"{name} has no message with text.", file_name=name)
    return Extracted(parts=parts, metadata={"messages": len(keys)})


def _parse_file(handle: BinaryIO) -> EmailMessage:
    return _PARSER.parse(handle)


class _Mail:
    """One message as parts: its text first, then its readable attachments."""

    def __init__(self, message: Message, context: LoadContext, *, label: str | None) -> None:
        self.subject = _subject(message)
        self.headers = _headers(message)
        body = _body(message)
        attached: list[str] = []
        skipped: list[str] = []
        attachment_parts: list[Part] = []
        for filename, data in _attachments(message):
            try:
                if context.load_attachment is None:
                    raise UnsupportedFile(
                        f"{filename} is nested too deeply in attached messages.",
                        file_name=filename,
                    )
                extracted = context.load_attachment(filename, data)
            except IngestError as error:
                skipped.append(one_line(error.message))
                continue
            attached.append(filename)
            attachment_parts.extend(_attachment_parts(filename, extracted, label))
        lines = [f"{key.title()}: {value}" for key, value in self.headers.items() if value]
        if attached:
            lines.append("Attachments: " + ", ".join(attached))
        if skipped:
            lines.append("Not indexed: " + " ".join(skipped))
        text = normalise_text("\n".join(lines) + ("\n\n" + body if body else ""))
        metadata: dict[str, Any] = {}
        if label:  # one of many messages in a mailbox: say which
            metadata = {"location": label, "subject": self.subject}
            metadata |= {k: v for k, v in self.headers.items() if k in ("from", "date") and v}
        self.has_content = bool(self.subject or body or attached)
        self.parts = [Part(text, metadata), *attachment_parts] if self.has_content else []


def _subject(message: Message) -> str:
    return one_line(str(message.get("Subject") or ""))


def _headers(message: Message) -> dict[str, str]:
    headers = {name.lower(): one_line(str(message.get(name) or "")) for name in _HEADERS}
    date = message.get("Date")
    moment = getattr(date, "datetime", None)
    if moment is not None:
        headers["date"] = moment.isoformat()
    return headers


def _body(message: Message) -> str:
    if not isinstance(message, EmailMessage):
        return ""
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    content = _text_content(part)
    if part.get_content_subtype() == "html":
        return html_text(content).text
    return normalise_text(content)


def _text_content(part: Message) -> str:
    try:
        content = part.get_content()  # type: ignore[attr-defined]
    except (LookupError, ValueError, AssertionError):  # unknown charset, broken encoding
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return content if isinstance(content, str) else ""


def _attachments(message: Message) -> Iterator[tuple[str, bytes]]:
    """(file name, bytes) of each attachment; inline body pictures are not attachments."""
    if not isinstance(message, EmailMessage):
        return
    for number, part in enumerate(message.iter_attachments(), start=1):
        disposition = part.get_content_disposition()
        if disposition != "attachment" and part.get_content_maintype() == "image":
            continue
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            inner = part.get_content()
            data = inner.as_bytes() if isinstance(inner, Message) else b""
            default = f"attached-message-{number}.eml"
        else:
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            default = f"attachment-{number}{mimetypes.guess_extension(content_type) or ''}"
        yield _safe_name(part.get_filename() or default), data


def _safe_name(name: str) -> str:
    return PurePosixPath(name.replace("\\", "/")).name.strip()[:200] or "attachment"


def _attachment_parts(filename: str, extracted: Extracted, label: str | None) -> Iterator[Part]:
    where = f"{label}, attachment {filename}" if label else f"attachment {filename}"
    for part in extracted.parts:
        inner = part.metadata.get("location") or (
            f"page {part.metadata['page']}" if "page" in part.metadata else None
        )
        metadata = {
            **part.metadata,
            "attachment": filename,
            "location": f"{where}, {inner}" if inner else where,
        }
        yield Part(normalise_text(f"Attachment: {filename}\n{part.text}"), metadata)
