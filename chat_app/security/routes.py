"""Routes kb answers in front of Chainlit's (its catch-all would hide any added later).

- `POST /login`: Chainlit's route turns any exception of the password callback into
  "wrong password" (401); kb's answers 429 when throttled and 503 when the database
  is unreachable, then signs the session cookie exactly as Chainlit's does.
- `PUT`/`DELETE /feedback`: Chainlit's routes do no ownership check and turn every
  error into a 500; these go through `KbDataLayer`'s checks and answer 404 for
  anything that is not the caller's.
- `GET /project/thread/{thread_id}/element/{element_id}`: the owner gets the element,
  everyone else 404 (Chainlit's answered 401 to others and 500 to the owner).
- `PUT /project/thread/share`, `GET /project/share/{thread_id}`: thread sharing is
  off in kb (`allow_thread_sharing = false`), but Chainlit's routes still let an
  author mark a chat shared and any logged-in user read it; both answer 404.
- `GET /project/translations`: Chainlit's texts plus the login form's messages for
  kb's refusals (the form shows `auth.login.errors.<detail>`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from chainlit.auth import create_jwt, get_current_user, set_auth_cookie
from chainlit.config import config
from chainlit.types import DeleteFeedbackRequest, UpdateFeedbackRequest
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordRequestForm

from chat_app.auth import LoginRefused, PasswordLogin
from chat_app.datalayer import AccessRefused, KbDataLayer
from chat_app.security.middleware import client_address
from chat_app.security.outage import SERVICE_UNAVAILABLE
from chat_app.security.throttle import TOO_MANY_ATTEMPTS

__all__ = ["LOGIN_MESSAGES", "install_routes"]

log = logging.getLogger("kb.security")

#: Login-form texts. Chainlit's login page shows `auth.login.errors.<status text>`
#: of a failed login (not its detail): "Service Unavailable", "Too Many Requests".
LOGIN_MESSAGES = {
    "Service Unavailable": SERVICE_UNAVAILABLE,
    "Too Many Requests": TOO_MANY_ATTEMPTS,
}


# Chainlit's own pattern for the language parameter.
_LANGUAGE = "^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,4})?(-[a-zA-Z0-9]{2,8})?(-x-[a-zA-Z0-9]{1,8})?$"


def _require_login(current_user: Any) -> None:
    if current_user is None:
        raise HTTPException(status_code=401, detail="Unauthorized")


def install_routes(
    app: FastAPI, *, data_layer: Callable[[], KbDataLayer], login: Callable[[], PasswordLogin]
) -> None:
    """Add kb's routes in front of Chainlit's (idempotent). `data_layer` and `login`
    are called per request, so installing builds nothing."""
    if any(getattr(r, "name", None) == "kb_login" for r in app.router.routes):
        return

    async def password_login(
        request: Request, form: OAuth2PasswordRequestForm = Depends()
    ) -> JSONResponse:
        check = login()
        try:
            user = await asyncio.to_thread(
                check, form.username, form.password, address=client_address.get()
            )
        except LoginRefused as refused:
            headers = {"Retry-After": str(refused.retry_after)} if refused.retry_after else None
            raise HTTPException(refused.status, refused.message, headers=headers) from None
        if user is None:
            raise HTTPException(status_code=401, detail="credentialssignin")
        try:  # as Chainlit's own login: the user row carries the login's metadata
            await data_layer().create_user(user)
        except Exception:
            log.exception("recording the login of %r in the chat history failed", user.identifier)
        response = JSONResponse({"success": True})
        set_auth_cookie(request, response, create_jwt(user))
        return response

    async def update_feedback(
        update: UpdateFeedbackRequest, current_user: Any = Depends(get_current_user)
    ) -> JSONResponse:
        _require_login(current_user)
        try:
            feedback_id = await data_layer().upsert_feedback(update.feedback)
        except AccessRefused:
            raise HTTPException(status_code=404, detail="Message not found.") from None
        return JSONResponse({"success": True, "feedbackId": feedback_id})

    async def delete_feedback(
        payload: DeleteFeedbackRequest, current_user: Any = Depends(get_current_user)
    ) -> JSONResponse:
        _require_login(current_user)
        try:
            await data_layer().delete_feedback(payload.feedbackId)
        except AccessRefused:
            raise HTTPException(status_code=404, detail="Feedback not found.") from None
        return JSONResponse({"success": True})

    async def get_element(
        thread_id: str, element_id: str, current_user: Any = Depends(get_current_user)
    ) -> JSONResponse:
        _require_login(current_user)
        element = await data_layer().get_element(thread_id, element_id)
        if element is None:
            raise HTTPException(status_code=404, detail="Element not found.")
        return JSONResponse(element)

    async def sharing_is_off(current_user: Any = Depends(get_current_user)) -> JSONResponse:
        _require_login(current_user)
        raise HTTPException(status_code=404, detail="Thread sharing is not enabled.")

    async def translations(
        language: str = Query(default="en-US", pattern=_LANGUAGE),
    ) -> JSONResponse:
        translation: dict[str, Any] = config.load_translation(config.ui.language or language)
        errors = translation.setdefault("auth", {}).setdefault("login", {}).setdefault("errors", {})
        for status_text, text in LOGIN_MESSAGES.items():
            errors.setdefault(status_text, text)
            errors.setdefault(status_text.lower(), text)
        return JSONResponse({"translation": translation})

    routes: list[tuple[str, Callable[..., Any], str, str]] = [
        ("/login", password_login, "POST", "kb_login"),
        ("/feedback", update_feedback, "PUT", "kb_update_feedback"),
        ("/feedback", delete_feedback, "DELETE", "kb_delete_feedback"),
        ("/project/thread/{thread_id}/element/{element_id}", get_element, "GET", "kb_element"),
        ("/project/thread/share", sharing_is_off, "PUT", "kb_share_thread"),
        ("/project/share/{thread_id}", sharing_is_off, "GET", "kb_shared_thread"),
        ("/project/translations", translations, "GET", "kb_translations"),
    ]
    for path, endpoint, method, name in routes:
        app.add_api_route(path, endpoint, methods=[method], name=name)
        app.router.routes.insert(0, app.router.routes.pop())
