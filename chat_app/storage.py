"""Chainlit element storage in PostgreSQL (`stored_files`, BYTEA) and the route serving it.

The wheel ships only S3/GCS/Azure storage clients; keeping attachments in the same
database keeps "one PostgreSQL" true and makes them survive a resume. The read URL
points at `/kb/files/<key>`, which serves bytes only to the owner of a thread that
holds an element with that key (elements -> threads -> "userId"): the key's user
prefix is Chainlit's naming, not a proof of ownership.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from chainlit.data.storage_clients.base import BaseStorageClient
from fastapi import Depends, FastAPI, HTTPException, Response
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from db.models import StoredFile

__all__ = [
    "FILES_ROUTE",
    "PostgresStorageClient",
    "install_file_route",
    "read_owned_file",
    "served_type",
]

FILES_ROUTE = "/kb/files"

_OWNED_FILE = sa.text(
    """
    SELECT f.data, f.mime, e.name
    FROM stored_files f
    JOIN elements e ON e."objectKey" = f.object_key
    JOIN threads t ON t.id = e."threadId"
    WHERE f.object_key = :key AND t."userId" = :user_id
    LIMIT 1
    """
)


def _user_from_key(object_key: str) -> uuid.UUID | None:
    """Chainlit's keys start with the thread owner's id; kept only for ON DELETE CASCADE."""
    try:
        return uuid.UUID(object_key.split("/", 1)[0])
    except ValueError:
        return None


class PostgresStorageClient(BaseStorageClient):
    """Stores element bytes in `stored_files`; URLs go through the authenticated route."""

    def __init__(self, engine: AsyncEngine, *, url_prefix: str = FILES_ROUTE) -> None:
        self.engine = engine
        self.url_prefix = url_prefix.rstrip("/")

    def url_for(self, object_key: str) -> str:
        return f"{self.url_prefix}/{quote(object_key)}"

    async def upload_file(
        self,
        object_key: str,
        data: bytes | str,
        mime: str = "application/octet-stream",
        overwrite: bool = True,
        content_disposition: str | None = None,
    ) -> dict[str, Any]:
        payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        values = {
            "object_key": object_key,
            "user_id": _user_from_key(object_key),
            "mime": mime,
            "size": len(payload),
            "data": payload,
        }
        stmt = pg_insert(StoredFile).values(values)
        if overwrite:
            stmt = stmt.on_conflict_do_update(
                index_elements=["object_key"],
                set_={k: stmt.excluded[k] for k in ("mime", "size", "data")},
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=["object_key"])
        async with self.engine.begin() as conn:
            await conn.execute(stmt)
        return {"object_key": object_key, "url": self.url_for(object_key)}

    async def delete_file(self, object_key: str) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                sa.delete(StoredFile).where(StoredFile.object_key == object_key)
            )
        return bool(result.rowcount)

    async def get_read_url(self, object_key: str) -> str:
        return self.url_for(object_key)

    async def close(self) -> None:
        await self.engine.dispose()


async def read_owned_file(
    engine: AsyncEngine, *, object_key: str, user_id: uuid.UUID
) -> tuple[bytes, str, str] | None:
    """(bytes, mime, name) when `user_id` owns a thread holding this file, else None."""
    async with engine.connect() as conn:
        row = (await conn.execute(_OWNED_FILE, {"key": object_key, "user_id": user_id})).first()
    if row is None:
        return None
    return bytes(row.data), row.mime or "application/octet-stream", row.name


# Shown in the browser; anything else (HTML, SVG...) is downloaded, so an uploaded
# page cannot run script on the app's origin.
_INLINE_TYPES = frozenset(
    {
        "application/pdf",
        "text/plain",
        "text/markdown",
        "text/csv",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
    }
)


# Read as plain text in the browser: only there (and in HTML) do the text fragments of
# citation links (#:~:text=...) scroll to the cited words; Chromium ignores them in a
# text/markdown page.
_SHOWN_AS_TEXT = frozenset({"text/markdown", "text/csv", "text/x-markdown"})
_UNLABELLED = frozenset({"", "application/octet-stream", "binary/octet-stream"})


def served_type(name: str, mime: str) -> str:
    """The Content-Type a stored file is served with: its own, a PDF uploaded without a
    type as a PDF (so a citation opens it at its page), Markdown and CSV as text."""
    base = mime.split(";")[0].strip().lower()
    if base in _UNLABELLED and name.lower().endswith(".pdf"):
        return "application/pdf"
    if base in _SHOWN_AS_TEXT:
        return "text/plain"
    return mime


def _file_headers(name: str, mime: str) -> dict[str, str]:
    kind = "inline" if mime.split(";")[0].strip() in _INLINE_TYPES else "attachment"
    headers = {
        "Content-Disposition": f"{kind}; filename*=UTF-8''{quote(name)}",
        "Cache-Control": "private, max-age=3600",
        "X-Content-Type-Options": "nosniff",
    }
    if mime != "application/pdf":  # Chromium's PDF viewer does not run in a sandbox
        headers["Content-Security-Policy"] = "sandbox"
    return headers


def install_file_route(
    app: FastAPI, engine: Callable[[], AsyncEngine], *, path: str = FILES_ROUTE
) -> None:
    """Add `GET {path}/{key}` in FRONT of Chainlit's catch-all route (else it is unreachable).

    `engine` is called on the first request, so installing the route builds nothing."""
    from chainlit.auth import get_current_user

    async def serve_file(
        object_key: str, current_user: Any = Depends(get_current_user)
    ) -> Response:
        user_id = getattr(current_user, "id", None)
        if not user_id:
            raise HTTPException(status_code=401, detail="Log in to read attachments.")
        try:
            owner = uuid.UUID(str(user_id))
        except ValueError:
            raise HTTPException(status_code=404, detail="File not found.") from None
        found = await read_owned_file(engine(), object_key=object_key, user_id=owner)
        if found is None:
            # Same answer for "missing" and "someone else's": no probing of keys.
            raise HTTPException(status_code=404, detail="File not found.")
        data, mime, name = found
        mime = served_type(name, mime)
        return Response(content=data, media_type=mime, headers=_file_headers(name, mime))

    route_path = f"{path.rstrip('/')}/{{object_key:path}}"
    if any(getattr(r, "path", None) == route_path for r in app.router.routes):
        return
    app.add_api_route(route_path, serve_file, methods=["GET"], name="kb_stored_file")
    app.router.routes.insert(0, app.router.routes.pop())
