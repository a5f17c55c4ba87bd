"""One ASGI middleware in front of Chainlit: origins, sessions, outages, headers.

For every HTTP request and websocket:
- a request carrying an `Origin` other than the app's own (its public URL, or the
  host the browser addressed) is refused with 403: Chainlit's socket.io server does
  not check origins, and a page on another port of the same host is "same-site",
  so the browser would send it the session cookie;
- a request with a session token has the token verified against `login_sessions`;
  an ended session is treated as no session at all (its cookie and Authorization
  header are removed before Chainlit sees them, so Chainlit answers 401 and the
  socket refuses to connect), and a verified one is published in
  `sessions.current_session` for ownership checks;
- a database outage while verifying answers 503 "service unavailable" (logged once
  per outage by `outage.monitor`);
- responses get the security headers of `HeaderPolicy`, and Secure cookies when
  the public URL is https.

Static assets and the page itself are served without a session check.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from chainlit.auth.cookie import _auth_cookie_name as AUTH_COOKIE
from chainlit.auth.cookie import get_token_from_cookies
from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chat_app.security.headers import HeaderPolicy, with_secure_flag
from chat_app.security.outage import SERVICE_UNAVAILABLE, is_outage, monitor
from chat_app.security.sessions import SessionGate, current_session

__all__ = ["SecurityMiddleware", "SecurityPolicy", "client_address"]

log = logging.getLogger("kb.security")

#: The client address of the request being served (after uvicorn's proxy headers).
client_address: ContextVar[str | None] = ContextVar("kb_client_address", default=None)

# Served to anyone: the page's assets and the endpoints a logged-out page needs.
_PUBLIC_PREFIXES = ("/assets/", "/public/", "/avatars/", "/auth/oauth/")
_PUBLIC_PATHS = frozenset(
    {"/health", "/favicon", "/logo", "/auth/config", "/project/translations", "/login", "/logout"}
)
# Everything else under these is an API; other GETs of HTML are the single-page app.
_API_PREFIXES = ("/user", "/project/", "/feedback", "/kb/", "/ws/", "/mcp", "/auth/", "/set-")


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


@dataclass(frozen=True)
class SecurityPolicy:
    """What the middleware enforces, built once the app's services exist."""

    gate: SessionGate
    headers: HeaderPolicy = field(default_factory=HeaderPolicy)
    public_origin: str | None = None

    def origin_allowed(self, origin: str, host: str | None) -> bool:
        origin = origin.strip().lower()
        if self.public_origin and origin == self.public_origin:
            return True
        # The page's own origin as the browser addressed it (direct, or through a
        # proxy that passes the Host header on).
        return bool(host) and urlsplit(origin).netloc == (host or "").lower()


def _needs_session_check(scope: Scope, headers: Headers) -> bool:
    if scope["type"] == "websocket":
        return True
    path: str = scope.get("path", "")
    if path in _PUBLIC_PATHS or path == "/" or path.startswith(_PUBLIC_PREFIXES):
        return False
    # Other GETs are the single-page app's HTML (no user data in it).
    return path.startswith(_API_PREFIXES) or scope.get("method") not in ("GET", "HEAD")


def _token(headers: Headers) -> str | None:
    cookie = headers.get("cookie")
    if cookie:
        token = get_token_from_cookies(cookie_parser(cookie))
        if token:
            return token
    authorization = headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def _without_credentials(scope: Scope) -> Scope:
    """The scope minus the session cookie(s) and Authorization header."""
    kept: list[tuple[bytes, bytes]] = []
    for name, value in scope["headers"]:
        if name == b"authorization":
            continue
        if name == b"cookie":
            parts = [
                p
                for p in value.decode("latin-1").split(";")
                if p.strip() and not p.strip().startswith(AUTH_COOKIE)
            ]
            if not parts:
                continue
            value = ";".join(parts).strip().encode("latin-1")
        kept.append((name, value))
    return {**scope, "headers": kept}


class SecurityMiddleware:
    """See the module docstring. `policy` is called on the first request (the app's
    services are opened at start-up, after the middleware is installed)."""

    def __init__(self, app: ASGIApp, policy: Callable[[], SecurityPolicy]) -> None:
        self.app = app
        self._policy_factory = policy
        self._policy: SecurityPolicy | None = None

    @property
    def policy(self) -> SecurityPolicy:
        if self._policy is None:
            self._policy = self._policy_factory()
        return self._policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        policy = self.policy
        headers = Headers(scope=scope)
        client = scope.get("client")
        client_address.set(client[0] if client else None)
        current_session.set(None)

        origin = headers.get("origin")
        if origin and not policy.origin_allowed(origin, headers.get("host")):
            log.warning(
                "refused a cross-origin request from %s to %s",
                origin[:200],
                scope.get("path", "")[:200],
            )
            await _refuse(scope, receive, send, 403, "Cross-origin requests are not accepted.")
            return

        token = _token(headers)
        if token and _needs_session_check(scope, headers):
            claims = policy.gate.claims(token)
            if claims is not None:
                try:
                    if not await policy.gate.is_open(claims):
                        claims = None
                except Exception as error:
                    if not is_outage(error):
                        raise
                    during = f"{scope.get('method', 'WS')} {scope.get('path')}"
                    monitor.failed(error, during=during)
                    await _refuse(scope, receive, send, 503, SERVICE_UNAVAILABLE)
                    return
                monitor.succeeded()
            if claims is None:
                scope = _without_credentials(scope)
            current_session.set(claims)

        if scope["type"] == "http":
            send = _adding_headers(send, policy, headers.get("host"))
        await self.app(scope, receive, send)


def _adding_headers(send: Send, policy: SecurityPolicy, host: str | None) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            raw: list[tuple[bytes, bytes]] = list(message.get("headers", []))
            if policy.headers.https:
                raw = [
                    (name, with_secure_flag(value) if name.lower() == b"set-cookie" else value)
                    for name, value in raw
                ]
            raw += policy.headers.headers_for(raw, host)
            message = {**message, "headers": raw}
        await send(message)

    return wrapped


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
    if scope["type"] == "websocket":
        # Closing before accepting makes the server answer the handshake with 403.
        await send({"type": "websocket.close", "code": 1008, "reason": detail[:120]})
        return
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 503:
        headers.append((b"retry-after", b"5"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
