"""Integration tokens at rest: Fernet with a key derived from the app's secret key.

HKDF-SHA256 turns any secret-key string into the 32 bytes Fernet needs, so the
setting can be a passphrase; the `info` label keeps this key distinct from any
other key derived from the same secret.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ingest.notion.errors import NotionTokenUnreadable

__all__ = ["decrypt_token", "encrypt_token"]

_INFO = b"kb notion integration token v1"


def _fernet(secret_key: str) -> Fernet:
    if not secret_key:
        raise ValueError("secret_key must not be empty")
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(raw))


def encrypt_token(token: str, *, secret_key: str) -> bytes:
    """The token, encrypted and authenticated."""
    return _fernet(secret_key).encrypt(token.encode())


def decrypt_token(data: bytes, *, secret_key: str) -> str:
    """The token back; a clear error if the secret key changed since it was stored."""
    try:
        return _fernet(secret_key).decrypt(bytes(data)).decode()
    except InvalidToken:
        raise NotionTokenUnreadable(
            "The stored Notion token cannot be decrypted with the current secret key.",
            hint="The secret key changed: run `kb notion connect` again to store the token anew.",
        ) from None
