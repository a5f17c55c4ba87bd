"""Security headers for every response, and Secure cookies behind https.

The Content-Security-Policy is the strictest Chainlit's UI runs under (checked in
a real browser, `tests/browser/test_security_headers.py`): scripts only from the
app itself plus the hashes of the two inline scripts in Chainlit's page; styles
inline (its components inject them) and from the font/KaTeX stylesheets its page
links; frames only of its own attachments; nobody may frame the app.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

__all__ = ["HeaderPolicy", "inline_script_hashes", "with_secure_flag"]

_INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.DOTALL | re.I)


def inline_script_hashes(html: str) -> list[str]:
    """CSP source expressions ('sha256-…') of the inline scripts of a page."""
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(html)
    ]


def _chainlit_page_hashes() -> list[str]:
    from chainlit.server import get_html_template

    return inline_script_hashes(get_html_template(""))


@dataclass(frozen=True)
class HeaderPolicy:
    """Which headers to add. `https`: the public URL is https (HSTS, Secure cookies)."""

    enabled: bool = True
    https: bool = False
    # External stylesheets and fonts Chainlit's page links (Google Fonts, KaTeX).
    style_hosts: tuple[str, ...] = ("https://fonts.googleapis.com", "https://cdn.jsdelivr.net")
    font_hosts: tuple[str, ...] = ("https://fonts.gstatic.com", "https://cdn.jsdelivr.net")
    _hashes: list[str] = field(default_factory=list, compare=False, repr=False)

    @cached_property
    def script_hashes(self) -> tuple[str, ...]:
        return tuple(self._hashes or _chainlit_page_hashes())

    def content_security_policy(self, host: str | None) -> str:
        # CSP3 lets 'self' match ws(s) of the same host; older engines need it spelled out.
        sockets = f" ws://{host} wss://{host}" if host else ""
        directives = {
            "default-src": "'self'",
            "script-src": " ".join(("'self'", *self.script_hashes)),
            "style-src": " ".join(("'self'", "'unsafe-inline'", *self.style_hosts)),
            "font-src": " ".join(("'self'", "data:", *self.font_hosts)),
            "img-src": "'self' data: blob:",
            "media-src": "'self' blob:",
            "connect-src": "'self'" + sockets,
            "frame-src": "'self' blob:",
            "worker-src": "'self' blob:",
            "object-src": "'none'",
            "base-uri": "'self'",
            "form-action": "'self'",
            "frame-ancestors": "'self'",
        }
        return "; ".join(f"{name} {value}" for name, value in directives.items())

    def headers_for(
        self, existing: Iterable[tuple[bytes, bytes]], host: str | None
    ) -> list[tuple[bytes, bytes]]:
        """Headers to add to a response that already has the headers `existing`."""
        if not self.enabled:
            return []
        present = {name.lower(): value for name, value in existing}
        wanted: list[tuple[bytes, bytes]] = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"strict-origin-when-cross-origin"),
            # The app frames its own attachments (PDF viewer); nobody else may frame it.
            (b"x-frame-options", b"SAMEORIGIN"),
        ]
        # The policy is the page's; files (a PDF opened in the browser's viewer) and
        # API answers are not documents it applies to.
        if present.get(b"content-type", b"").startswith(b"text/html"):
            wanted.append((b"content-security-policy", self.content_security_policy(host).encode()))
        if self.https:
            wanted.append((b"strict-transport-security", b"max-age=31536000"))
        return [(name, value) for name, value in wanted if name not in present]


def with_secure_flag(cookie: bytes) -> bytes:
    """A Set-Cookie value with the Secure attribute (added once)."""
    attributes = [part.strip().lower() for part in cookie.split(b";")[1:]]
    return cookie if b"secure" in attributes else cookie + b"; Secure"
