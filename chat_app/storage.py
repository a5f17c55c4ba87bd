"""Files in PostgreSQL and the routes serving them.

Chat attachments: Chainlit element storage in `stored_files` (BYTEA). The wheel ships
only S3/GCS/Azure storage clients; keeping attachments in the same database keeps
"one PostgreSQL" true and makes them survive a resume. The read URL points at
`/kb/files/<key>`, which serves bytes only to the owner of a thread that holds an
element with that key (elements -> threads -> "userId"): the key's user prefix is
Chainlit's naming, not a proof of ownership.

Indexed files: `source_files`, per space, served at `/kb/sources/<id>` to the members
of that space only (what a citation's "open the file" link opens).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from chainlit.data.storage_clients.base import BaseStorageClient
from fastapi import Depends, FastAPI, HTTPException, Response
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from db.models import StoredFile
from db.scoped import user_scope
from db.source_files import FileBytes, read_source_file
from db.spaces import readable_spaces

__all__ = [
    "FILES_ROUTE",
    "SOURCES_ROUTE",
    "PostgresStorageClient",
    "install_file_route",
    "install_source_route",
    "read_owned_file",
    "served_type",
    "source_file_url",
]

FILES_ROUTE = "/kb/files"
SOURCES_ROUTE = "/kb/sources"

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

    _add_first(app, f"{path.rstrip('/')}/{{object_key:path}}", serve_file, "kb_stored_file")


def _add_first(app: FastAPI, route_path: str, endpoint: Callable[..., Any], name: str) -> None:
    if any(getattr(r, "path", None) == route_path for r in app.router.routes):
        return
    app.add_api_route(route_path, endpoint, methods=["GET"], name=name)
    app.router.routes.insert(0, app.router.routes.pop())


def source_file_url(file_id: uuid.UUID) -> str:
    return f"{SOURCES_ROUTE}/{file_id}"


def _read_source_file(engine: Engine, user_id: uuid.UUID, file_id: uuid.UUID) -> FileBytes | None:
    # The user's spaces now, in their own scope: row-level security and the SQL filter
    # both require a membership, so a removed member gets nothing.
    with user_scope(engine, user_id) as conn:
        spaces = [s.id for s in readable_spaces(conn, user_id=user_id)]
        return read_source_file(conn, file_id=file_id, space_ids=spaces)


def install_source_route(
    app: FastAPI, engine: Callable[[], Engine], *, path: str = SOURCES_ROUTE
) -> None:
    """`GET {path}/{file_id}`: an indexed file, for members of its space (404 otherwise)."""
    from chainlit.auth import get_current_user

    async def serve_source(file_id: str, current_user: Any = Depends(get_current_user)) -> Response:
        user_id = getattr(current_user, "id", None)
        if not user_id:
            raise HTTPException(status_code=401, detail="Log in to read files.")
        try:
            found = await asyncio.to_thread(
                _read_source_file, engine(), uuid.UUID(str(user_id)), uuid.UUID(file_id)
            )
        except ValueError:
            found = None
        if found is None:
            raise HTTPException(status_code=404, detail="File not found.")
        mime = served_type(found.filename, found.mime or "application/octet-stream")
        return Response(
            content=found.data, media_type=mime, headers=_file_headers(found.filename, mime)
        )

    _add_first(app, f"{path.rstrip('/')}/{{file_id}}", serve_source, "kb_source_file")
