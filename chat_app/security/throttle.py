"""Failed-login throttling per login name and per client address (library: `limits`).

A fixed window: after `max_per_login` failures for one login name, or
`max_per_address` from one address, within `window`, further attempts are refused
(HTTP 429 with Retry-After) without checking the password until the window ends.
The per-address limit is higher, so one guessed account does not lock out the
others behind the same address (an office NAT). Counters live in PostgreSQL by
default (`db.throttle_store`, shared by every web process on the database); any
`limits` storage URI (`memory://`, `redis://host:6379`) can replace it.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from limits import RateLimitItemPerSecond
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy.engine import Engine

from db.throttle_store import PostgresStorage

__all__ = ["TOO_MANY_ATTEMPTS", "LoginThrottle", "ThrottleConfig", "build_storage"]

TOO_MANY_ATTEMPTS = "Too many failed sign-ins. Wait a few minutes, then try again."


@dataclass(frozen=True)
class ThrottleConfig:
    max_per_login: int = 20
    max_per_address: int = 100
    window_seconds: int = 900


def build_storage(uri: str, engine: Engine) -> Storage:
    """`postgresql` (the app's database) or a `limits` storage URI."""
    if uri.strip().lower() in ("postgresql", "postgres", "database"):
        return PostgresStorage(engine)
    storage = storage_from_string(uri)
    if not isinstance(storage, Storage):
        raise ValueError(f"{uri!r} is an async storage; use its synchronous URI.")
    return storage


def _key(value: str) -> str:
    # Hashed: a password typed into the login field must not sit in a table.
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]


class LoginThrottle:
    """Counts failed logins and says how long a login or address must wait."""

    def __init__(self, storage: Storage, config: ThrottleConfig) -> None:
        self._limiter = FixedWindowRateLimiter(storage)
        self._per_login = RateLimitItemPerSecond(
            config.max_per_login, config.window_seconds, namespace="kb-login-name"
        )
        self._per_address = RateLimitItemPerSecond(
            config.max_per_address, config.window_seconds, namespace="kb-login-address"
        )

    def _limits(self, login: str, address: str | None) -> list[tuple[RateLimitItemPerSecond, str]]:
        limits = [(self._per_login, _key(login.strip().lower()))]
        if address:
            limits.append((self._per_address, _key(address)))
        return limits

    def retry_after(self, login: str, address: str | None) -> int | None:
        """Seconds to wait when the login or the address used up its failures, else None."""
        waits = [
            self._limiter.get_window_stats(item, key).reset_time - time.time()
            for item, key in self._limits(login, address)
            if not self._limiter.test(item, key)
        ]
        return max(1, int(max(waits)) + 1) if waits else None

    def failed(self, login: str, address: str | None) -> None:
        for item, key in self._limits(login, address):
            self._limiter.hit(item, key)
