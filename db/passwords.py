"""Password hashing: argon2id for new hashes; bcrypt hashes (migrated users) still verify."""

from __future__ import annotations

import bcrypt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["hash_password", "needs_rehash", "verify_password"]

_argon2 = PasswordHasher()


def hash_password(password: str) -> str:
    return _argon2.hash(password)


def verify_password(password: str, stored_hash: str | None) -> bool:
    """True when `password` matches an argon2 or bcrypt hash."""
    if not stored_hash:
        return False
    if stored_hash.startswith(("$2a$", "$2b$", "$2y$")):
        try:
            return bcrypt.checkpw(password.encode(), stored_hash.encode())
        except ValueError:
            return False
    try:
        return _argon2.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """bcrypt or outdated argon2 parameters: rehash after a successful login."""
    if stored_hash.startswith("$argon2"):
        return _argon2.check_needs_rehash(stored_hash)
    return True
