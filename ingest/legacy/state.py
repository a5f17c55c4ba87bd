"""What one migration run carries between phases: options, targets, id maps, progress."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from ingest.legacy.qdrant_source import DEFAULT_COLLECTION
from ingest.legacy.report import MigrationReport
from ingest.legacy.target import Target

__all__ = ["BatchDone", "MigrationOptions", "RunState", "SessionRef", "UserRef", "batched"]

T = TypeVar("T")


@dataclass(frozen=True)
class MigrationOptions:
    sqlite_path: Path
    qdrant_url: str | None = None
    qdrant_path: Path | None = None
    collection: str = DEFAULT_COLLECTION
    dry_run: bool = False
    reembed: bool = False
    batch_size: int = 500
    vector_sample: int = 50
    neighbour_sample: int = 10
    neighbour_k: int = 5
    assistant_name: str = "Assistant"
    #: From this many points into an empty table, the HNSW index is built after the load.
    bulk_index_threshold: int = 5000


@dataclass(frozen=True)
class BatchDone:
    """Progress: `batch` 0 announces a phase and its total; then one event per committed batch."""

    phase: str
    batch: int
    done: int
    total: int | None


@dataclass(frozen=True)
class UserRef:
    id: uuid.UUID
    identifier: str


@dataclass(frozen=True)
class SessionRef:
    thread_id: uuid.UUID
    user: UserRef
    created_at: datetime | None


@dataclass
class RunState:
    options: MigrationOptions
    target: Target
    report: MigrationReport
    on_batch: Callable[[BatchDone], None] | None = None
    #: legacy user key (users.user_id, or users.id) and lower-case email -> target user
    users: dict[str, UserRef] = field(default_factory=dict)
    #: legacy session_id -> thread
    sessions: dict[str, SessionRef] = field(default_factory=dict)
    #: legacy session_id -> why it was skipped (its messages are skipped with it)
    skipped_sessions: dict[str, str] = field(default_factory=dict)
    #: target user id -> their personal space, where their legacy content goes
    personal_spaces: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)

    def space_of(self, user_id: uuid.UUID) -> uuid.UUID:
        return self.personal_spaces[user_id]

    def user(self, legacy_key: str | None) -> UserRef | None:
        if legacy_key is None:
            return None
        return self.users.get(legacy_key) or self.users.get(legacy_key.lower())

    def announce(self, phase: str, total: int | None) -> None:
        if self.on_batch is not None:
            self.on_batch(BatchDone(phase, 0, 0, total))

    def batch_done(self, phase: str, batch: int, done: int, total: int | None) -> None:
        """Called after a batch is committed; a callback that raises stops the run there."""
        if self.on_batch is not None:
            self.on_batch(BatchDone(phase, batch, done, total))


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
