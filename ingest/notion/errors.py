"""Notion errors people can act on: what happened, and what to do about it."""

from __future__ import annotations

from db.errors import KbError

__all__ = [
    "NotionAccessDenied",
    "NotionApiError",
    "NotionAuthError",
    "NotionError",
    "NotionNotConnected",
    "NotionRateLimited",
    "NotionSyncRunning",
    "NotionTokenUnreadable",
    "NotionUnavailable",
]


class NotionError(KbError):
    """Base of every Notion problem."""


class NotionAuthError(NotionError):
    """Notion refused the integration token (401)."""

    def __init__(
        self,
        message: str = "Notion rejected the integration token (401 unauthorized).",
        *,
        hint: str | None = None,
    ) -> None:
        super().__init__(
            message,
            hint=hint
            or "Copy the Internal Integration Secret from https://www.notion.so/my-integrations "
            "and run `kb notion connect` again.",
        )


class NotionAccessDenied(NotionError):
    """The integration cannot see an object (403 restricted_resource or 404 object_not_found)."""

    def __init__(self, kind: str, object_id: str, *, status: int) -> None:
        self.kind = kind
        self.object_id = object_id
        self.status = status
        super().__init__(
            f"The integration has no access to {kind} {object_id} (HTTP {status}).",
            hint=f"Share the {kind} with the integration in Notion's Share menu "
            "(or it was deleted).",
        )


class NotionRateLimited(NotionError):
    """Notion kept answering 429 after every allowed retry."""


class NotionUnavailable(NotionError):
    """Notion kept failing (5xx, timeouts, connection errors) after every allowed retry."""


class NotionApiError(NotionError):
    """Any other refusal (400 validation_error, 409 conflict...)."""


class NotionNotConnected(NotionError):
    """The user has no stored Notion connection."""


class NotionTokenUnreadable(NotionError):
    """The stored token cannot be decrypted with the current secret key."""


class NotionSyncRunning(NotionError):
    """Another sync of the same user's workspace is in progress."""
