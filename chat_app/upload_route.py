"""Files that Chainlit's upload route refuses still reach the chat, with their reason.

Chainlit's `POST /project/file` fails on a 0-byte file (`persist_file` raises
"ValueError: Either path or content must be provided to persist a file": a 500 and a
traceback in the server log) and answers 400 to a file its upload settings refuse.
The browser then drops that file with a toast, and the message goes out without
it: the chat never says what happened to it, while every other file of the upload
gets its line. This route, installed in front of Chainlit's, calls Chainlit's and,
when it refuses a file, registers an empty placeholder in the session's files with
the reason, so the file travels with the message and the upload handler reports it
like any other bad file (`chat_app/handlers/upload.py`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, UploadFile
from fastapi.responses import JSONResponse

__all__ = ["REFUSED_KEY", "UPLOAD_ROUTE", "install_upload_route", "refusal"]

log = logging.getLogger(__name__)

UPLOAD_ROUTE = "/project/file"
# Key of a placeholder's entry in `session.files`: why Chainlit refused the file.
REFUSED_KEY = "kb_refused"


def refusal(session_files: Mapping[str, Any], file_id: str | None) -> str | None:
    """Why Chainlit refused the upload with this id (a placeholder), or None."""
    entry = session_files.get(file_id or "")
    reason = entry.get(REFUSED_KEY) if isinstance(entry, dict) else None
    return str(reason) if reason else None


def _placeholder(session: Any, *, name: str, reason: str | None) -> dict[str, str]:
    """An empty file in the session's files, as Chainlit's `persist_file` would make it.

    Typed as bytes whatever its name: Chainlit would try to preview an empty "PDF"."""
    session.files_dir.mkdir(parents=True, exist_ok=True)
    file_id = str(uuid.uuid4())
    path = session.files_dir / file_id
    path.write_bytes(b"")
    session.files[file_id] = {
        "id": file_id,
        "path": path,
        "name": name,
        "type": "application/octet-stream",
        "size": 0,
        REFUSED_KEY: reason,
    }
    return {"id": file_id}


def install_upload_route(app: FastAPI) -> None:
    """Put `POST /project/file` in front of Chainlit's own (which it calls)."""
    from chainlit.auth import get_current_user
    from chainlit.server import upload_file as chainlit_upload_file
    from chainlit.session import WebsocketSession

    async def upload_file(
        session_id: str,
        file: UploadFile,
        current_user: Any = Depends(get_current_user),
        ask_parent_id: str | None = None,
    ) -> Any:
        name = file.filename or "upload"
        try:
            return await chainlit_upload_file(
                current_user=current_user,
                session_id=session_id,
                file=file,
                ask_parent_id=ask_parent_id,
            )
        except HTTPException as exc:
            if exc.status_code != 400:  # no session, not the session's user: refused
                raise
            reason: str | None = f"{name} was refused by the upload settings ({exc.detail})."
        except (ValueError, AssertionError) as exc:
            # A 0-byte file (Chainlit's persist_file treats b"" as "no content"), or
            # no name/type from the browser. The handler reports 0 bytes itself.
            reason = None if file.size == 0 else f"{name} could not be received ({exc})."
        session = WebsocketSession.get_by_id(session_id)
        # Chainlit checked both before it refused the file; checked again here because
        # this route writes into the session.
        if session is None:
            raise HTTPException(status_code=404, detail="Session not found")
        if current_user and (
            not session.user or session.user.identifier != current_user.identifier
        ):
            raise HTTPException(status_code=401, detail="Not your session")
        log.info(
            "upload %r refused by Chainlit (%s); reported in the chat", name, reason or "empty"
        )
        return JSONResponse(_placeholder(session, name=name, reason=reason))

    if any(
        getattr(route, "path", None) == UPLOAD_ROUTE and getattr(route, "name", None) == "kb_upload"
        for route in app.router.routes
    ):
        return
    app.add_api_route(UPLOAD_ROUTE, upload_file, methods=["POST"], name="kb_upload")
    # Starlette takes the first match: ours must come before Chainlit's.
    app.router.routes.insert(0, app.router.routes.pop())
