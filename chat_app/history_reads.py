"""Chat history from read replicas, with read-your-writes for a person's own messages.

Chainlit's data layer reads a person's whole history for the sidebar and for each
resumed chat (`get_all_user_threads`: up to 1,000 threads with every step and element,
three queries): by far its heaviest read, and the one that grows with use. With read
replicas it goes to one, chosen by the same `db.replicas.ReadRouter` as searches: a
replica that has replayed the person's own latest writes (waiting a bounded time for
one), else the primary. Every write the data layer makes (messages, thread names,
feedback, elements) is followed by noting the acting person's position
(`db.read_positions`), so the chat they just had is in the sidebar and resumes
complete, even from another web process.

The data layer's other reads stay on the primary: who owns a thread (an authorization
decision), the user at login, one element or step. They are single-row lookups where
being current matters more than offloading.

A history read that fails on a replica is answered by the primary; the replica is
skipped until a check finds it healthy. Chainlit's own statement runner logs and
swallows errors (an empty history would look like a valid answer), so the replica
readers raise instead.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa
from chainlit.data.sql_alchemy import SQLAlchemyDataLayer
from chainlit.data.storage_clients.base import BaseStorageClient
from chainlit.types import ThreadDict
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import sessionmaker

from db.engine import PoolConfig, make_async_engine
from db.replicas import ReadRouter

__all__ = ["HistoryReplicas", "is_write"]

log = logging.getLogger("kb.history")

_WRITES = ("INSERT", "UPDATE", "DELETE")


def is_write(query: str) -> bool:
    """Whether a statement of Chainlit's data layer changes rows."""
    words = query.split(None, 1)
    return bool(words) and words[0].upper() in _WRITES


class _ReplicaReader(SQLAlchemyDataLayer):
    """Chainlit's history reads on one replica; errors raise."""

    def __init__(self, engine: AsyncEngine, storage_provider: BaseStorageClient | None) -> None:
        super().__init__(
            conninfo=engine.url.render_as_string(hide_password=False),
            storage_provider=storage_provider,
        )
        # Ours checks pooled connections at checkout (a restarted replica) and carries
        # the replica's connect timeout; Chainlit's own engine has made no connection.
        self.engine = engine
        self.async_session = sessionmaker(  # type: ignore[call-overload]
            bind=engine, expire_on_commit=False, class_=AsyncSession
        )

    async def execute_sql(self, query: str, parameters: dict[str, Any]) -> Any:
        async with self.engine.connect() as connection:
            result = await connection.execute(sa.text(query), parameters)
            if result.returns_rows:
                return self.clean_result([dict(row._mapping) for row in result.fetchall()])
            return result.rowcount


class HistoryReplicas:
    """The replicas' history readers, and the router that picks one per read."""

    def __init__(self, router: ReadRouter, storage_provider: BaseStorageClient | None) -> None:
        self.router = router
        # Plain engines (not the scoped read engines): the history tables are read as
        # the login role, as on the primary.
        self._readers = {
            replica.name: _ReplicaReader(
                make_async_engine(replica.url, PoolConfig(pool_size=2, max_overflow=8)),
                storage_provider,
            )
            for replica in router.replicas
        }

    async def note(self, person: uuid.UUID) -> None:
        """After `person`'s history write committed (a failure is logged: the write stands)."""
        try:
            await self.router.note_writes([person])
        except Exception:
            log.warning("could not note a history write position", exc_info=True)

    async def threads(
        self,
        person: uuid.UUID,
        *,
        user_id: str | None,
        thread_id: str | None,
        on_primary: Callable[[], Awaitable[list[ThreadDict] | None]],
    ) -> list[ThreadDict] | None:
        """`get_all_user_threads` for `person` on a fresh enough replica, else the primary."""
        route = await self.router.route(person, kind="history")
        reader = self._readers.get(route.target)
        if reader is None:
            return await on_primary()
        try:
            return await reader.get_all_user_threads(user_id=user_id, thread_id=thread_id)
        except Exception as error:
            self.router.fallback(route, error)
            return await on_primary()

    async def dispose(self) -> None:
        """Close the replicas' history pools (the router owns the rest)."""
        for reader in self._readers.values():
            await reader.engine.dispose()
