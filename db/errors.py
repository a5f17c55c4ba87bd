"""Errors people can act on: each carries what happened and what to do."""

from __future__ import annotations


class KbError(Exception):
    """Base of every error the CLI and the UI show as a message, not a traceback."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


class DatabaseUnavailable(KbError):
    """The server is down, refuses the login, or the database does not exist."""


class ExtensionMissing(KbError):
    """pgvector is not installed on the server."""


class SchemaOutOfDate(KbError):
    """The database schema is missing or older than the code."""


class NotFound(KbError):
    """A named user, source or thread does not exist (for this user)."""


class InvalidInput(KbError):
    """A value given by a person is not acceptable."""
