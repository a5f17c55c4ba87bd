"""Chainlit's own SQLAlchemy data layer on our PostgreSQL (psycopg 3, async), with the
checks it lacks.

Threads, steps, elements and feedback go to the tables our migration created;
element bytes go to `stored_files` through `PostgresStorageClient`. The data layer
logs and swallows SQL errors, so tests check rows, not return values.

`KbDataLayer` adds what Chainlit's leaves to the app:
- ownership: feedback can be given, changed or removed only on a message of the
  acting user's own chat, and an element is read only from the user's own chat
  (the acting user is the session the security middleware verified);
- `get_element` works with PostgreSQL's JSONB `props` (Chainlit's `json.loads`
  of an already-decoded dict raised a TypeError: a 500 for the owner);
- a missing thread is "not found" (404), not an exception (500);
- attachments record their owner even when the chat's row is not written yet;
- a pooled engine that checks connections before use, and outages reported once
  (`chat_app.security.outage`) instead of a warning per failed statement;
- with read replicas, history reads go to them (`chat_app.history_reads`).
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from chainlit.context import ChainlitContextException, context
from chainlit.data.sql_alchemy import SQLAlchemyDataLayer
from chainlit.types import Feedback
from chainlit.user import PersistedUser, User
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import sessionmaker

from chat_app.history_reads import HistoryReplicas, is_write
from chat_app.security.outage import is_outage, monitor
from chat_app.security.sessions import SESSION_KEY, acting_user_id
from chat_app.storage import PostgresStorageClient
from db.engine import PoolConfig, make_async_engine, normalize_url
from db.errors import KbError
from db.replicas import ReadRouter

if TYPE_CHECKING:
    from chainlit.element import ElementDict
    from chainlit.step import StepDict
    from chainlit.types import ThreadDict

__all__ = ["AccessRefused", "KbDataLayer", "build_data_layer"]

log = logging.getLogger("kb.datalayer")

_STEP_OF_OWN_THREAD = sa.text(
    """
    SELECT s."threadId" AS thread_id FROM steps s JOIN threads t ON t.id = s."threadId"
    WHERE s.id = :step_id AND t."userId" = :user_id
    """
)
_FEEDBACK_OWNER = sa.text(
    """
    SELECT t."userId" AS user_id FROM feedbacks f JOIN threads t ON t.id = f."threadId"
    WHERE f.id = :feedback_id
    """
)
_OWN_ELEMENT = sa.text(
    """
    SELECT e.* FROM elements e JOIN threads t ON t.id = e."threadId"
    WHERE e.id = :element_id AND e."threadId" = :thread_id AND t."userId" = :user_id
    """
)
# Steps of a thread stored with defaultOpen (Chainlit writes the column, never reads it).
_OPEN_STEPS = sa.text(
    'SELECT id::text AS id FROM steps WHERE "threadId" = CAST(:thread_id AS uuid) AND "defaultOpen"'
)
# The steps among these that show a background job (which outlives any web process).
_JOB_STEPS = sa.text("SELECT step_id FROM jobs WHERE step_id = ANY(:step_ids)")
_INTERRUPTED = "interrupted: the server stopped before it finished. Send the file again."


class AccessRefused(KbError):
    """The acting user may not see or change this (answered as "not found")."""


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None


class KbDataLayer(SQLAlchemyDataLayer):
    """Chainlit's SQLAlchemy data layer with ownership checks and honest outages."""

    def __init__(
        self,
        conninfo: str,
        *,
        storage_engine: AsyncEngine,
        pool: PoolConfig | None = None,
        router: ReadRouter | None = None,
    ) -> None:
        storage = PostgresStorageClient(storage_engine)
        super().__init__(conninfo=conninfo, storage_provider=storage)
        self.replicas = HistoryReplicas(router, storage) if router is not None else None
        # Chainlit's engine does not check pooled connections: after a database
        # restart each of them would fail once. Ours pings them at checkout.
        self.engine = make_async_engine(conninfo, pool or PoolConfig(pool_size=5, max_overflow=10))
        self.async_session = sessionmaker(  # type: ignore[call-overload]
            bind=self.engine, expire_on_commit=False, class_=AsyncSession
        )

    async def execute_sql(
        self, query: str, parameters: dict[str, Any]
    ) -> list[dict[str, Any]] | int | None:
        """Chainlit's statement runner: same results, but an outage is reported to the
        monitor (one log line per outage) rather than as a warning per statement."""
        async with self.async_session() as session:
            try:
                await session.begin()
                result = await session.execute(sa.text(query), parameters)
                await session.commit()
            except Exception as error:
                await session.rollback()
                if is_outage(error):
                    monitor.failed(error, during="saving chat history")
                elif isinstance(error, SQLAlchemyError):
                    log.warning("a chat-history statement failed: %s", error)
                else:
                    log.warning("a chat-history statement failed unexpectedly: %r", error)
                return None
            monitor.succeeded()
            if self.replicas is not None and is_write(query):
                person = _acting_person()
                if person is not None:
                    await self.replicas.note(person)
            if result.returns_rows:
                rows = [dict(row._mapping) for row in result.fetchall()]
                cleaned = self.clean_result(rows)
                assert isinstance(cleaned, list)
                return cleaned
            return int(result.rowcount)

    async def _fetch(self, statement: sa.TextClause, **params: Any) -> list[dict[str, Any]]:
        """Rows of an ownership query; errors propagate (a refusal must not be a guess)."""
        async with self.engine.connect() as conn:
            result = await conn.execute(statement, params)
            return [dict(row._mapping) for row in result]

    # -- users ------------------------------------------------------------------------

    async def create_user(self, user: User) -> PersistedUser | None:
        """Chainlit stores the login's metadata on the user row: not the session id."""
        metadata = {k: v for k, v in user.metadata.items() if k != SESSION_KEY}
        return await super().create_user(
            User(identifier=user.identifier, display_name=user.display_name, metadata=metadata)
        )

    # -- threads ----------------------------------------------------------------------

    async def get_thread_author(self, thread_id: str) -> str:
        """The author's login, or "" for a missing thread (Chainlit's check answers 404)."""
        try:
            return await super().get_thread_author(thread_id)
        except ValueError:
            return ""

    async def _get_user_id_by_thread(self, thread_id: str) -> str | None:
        """The chat's owner; while the chat's row has no owner yet (its first message is
        still being saved), the user of the session creating the element."""
        owner = await super()._get_user_id_by_thread(thread_id)
        if owner:
            return owner
        try:
            user = context.session.user
        except ChainlitContextException:
            return None
        return str(user.id) if isinstance(user, PersistedUser) else None

    async def get_all_user_threads(
        self, user_id: str | None = None, thread_id: str | None = None
    ) -> list[ThreadDict] | None:
        """Chainlit's history read (the sidebar, a resumed chat), from a read replica
        when one has the acting person's latest writes."""
        person = _uuid(user_id) or _acting_person()
        if self.replicas is None or person is None:
            return await super().get_all_user_threads(user_id=user_id, thread_id=thread_id)
        return await self.replicas.threads(
            person,
            user_id=user_id,
            thread_id=thread_id,
            on_primary=lambda: super(KbDataLayer, self).get_all_user_threads(
                user_id=user_id, thread_id=thread_id
            ),
        )

    async def close_replicas(self) -> None:
        if self.replicas is not None:
            await self.replicas.dispose()

    async def get_thread(self, thread_id: str) -> ThreadDict | None:
        """The thread with each step's stored `defaultOpen` (Chainlit stores it but does
        not read it back): a job's step stays open after a reload, so its progress is
        visible without a click."""
        thread = await super().get_thread(thread_id)
        if thread is None or not thread.get("steps"):
            return thread
        rows = await self._fetch(_OPEN_STEPS, thread_id=thread["id"])
        open_ids = {str(row["id"]) for row in rows}
        for step in thread["steps"]:
            if str(step.get("id")) in open_ids:
                step["defaultOpen"] = True
        return thread

    async def mark_interrupted_steps(
        self, thread: ThreadDict, *, user_id: uuid.UUID, started_before: str
    ) -> list[StepDict]:
        """Tool steps of `thread` that never ended and began before this process
        started: their process died. Each says so, in the database and in `thread`
        (which the resumed chat then shows).

        A step that shows a background job (`jobs.step_id`: an upload, a Notion sync)
        is left alone: the job lives on in the queue whatever happened to this process,
        and the resumed chat follows it again (`chat_app/handlers/jobs.py`)."""
        open_steps = [
            step
            for step in thread.get("steps") or []
            if step.get("type") == "tool"
            and not step.get("end")
            and str(step.get("start") or step.get("createdAt") or "") < started_before
        ]
        if not open_steps or _uuid(thread.get("id")) is None:
            return []
        job_steps = await self._fetch(
            _JOB_STEPS, step_ids=[str(step.get("id")) for step in open_steps]
        )
        followed = {str(row["step_id"]) for row in job_steps}
        open_steps = [step for step in open_steps if str(step.get("id")) not in followed]
        marked: list[StepDict] = []
        for step in open_steps:
            progress = str(step.get("output") or "").rstrip("…. ")
            step["output"] = (
                f"{progress} — {_INTERRUPTED}" if progress else _INTERRUPTED.capitalize()
            )
            step["isError"] = True
            step["end"] = started_before
            async with self.engine.begin() as conn:
                await conn.execute(
                    sa.text(
                        """
                        UPDATE steps SET output = :output, "isError" = true, "end" = :end
                        WHERE id = :step_id AND "end" IS NULL AND "threadId" IN
                            (SELECT id FROM threads WHERE id = :thread_id AND "userId" = :user_id)
                        """
                    ),
                    {
                        "output": step["output"],
                        "end": started_before,
                        "step_id": step["id"],
                        "thread_id": thread["id"],
                        "user_id": user_id,
                    },
                )
            marked.append(step)
        return marked

    # -- feedback ---------------------------------------------------------------------

    async def upsert_feedback(self, feedback: Feedback) -> str:
        """Feedback only on a message of the acting user's own chat, and only over
        their own earlier feedback; the chat id is taken from the message, not the
        request."""
        user_id = _required_user()
        rows = await self._fetch(
            _STEP_OF_OWN_THREAD, step_id=_uuid(feedback.forId), user_id=user_id
        )
        if not rows or _uuid(feedback.forId) is None:
            raise AccessRefused("Message not found.")
        if feedback.id:
            if _uuid(feedback.id) is None:
                raise AccessRefused("Feedback not found.")
            owners = await self._fetch(_FEEDBACK_OWNER, feedback_id=_uuid(feedback.id))
            if owners and owners[0]["user_id"] != user_id:
                raise AccessRefused("Feedback not found.")
        return await super().upsert_feedback(replace(feedback, threadId=str(rows[0]["thread_id"])))

    async def delete_feedback(self, feedback_id: str) -> bool:
        user_id = _required_user()
        key = _uuid(feedback_id)
        owners = await self._fetch(_FEEDBACK_OWNER, feedback_id=key) if key else []
        if not owners or owners[0]["user_id"] != user_id:
            raise AccessRefused("Feedback not found.")
        return await super().delete_feedback(feedback_id)

    # -- elements ---------------------------------------------------------------------

    async def get_element(self, thread_id: str, element_id: str) -> ElementDict | None:
        """An element of the acting user's own chat, else None."""
        user_id = _required_user()
        thread, element = _uuid(thread_id), _uuid(element_id)
        if thread is None or element is None:
            return None
        rows = await self._fetch(
            _OWN_ELEMENT, thread_id=thread, element_id=element, user_id=user_id
        )
        if not rows:
            return None
        row = self.clean_result(rows[0])
        props = row.get("props")
        if isinstance(props, str):  # JSONB arrives decoded; text columns elsewhere do not
            props = json.loads(props or "{}")
        from chainlit.element import ElementDict

        return ElementDict(
            id=row["id"],
            threadId=row.get("threadId"),
            type=row["type"],
            chainlitKey=row.get("chainlitKey"),
            url=row.get("url"),
            objectKey=row.get("objectKey"),
            name=row["name"],
            props=props or {},
            display=row["display"],
            size=row.get("size"),
            language=row.get("language"),
            page=row.get("page"),
            autoPlay=row.get("autoPlay"),
            playerConfig=row.get("playerConfig"),
            forId=row.get("forId"),
            mime=row.get("mime"),
        )


def _acting_person() -> uuid.UUID | None:
    """The acting user if there is one (a request or a websocket), else None."""
    try:
        return _required_user()
    except AccessRefused:
        return None


def _required_user() -> uuid.UUID:
    """The acting user: the session the security middleware verified for this
    request, else the user of the Chainlit websocket session being served."""
    user_id = acting_user_id()
    if user_id is not None:
        return user_id
    try:
        user = context.session.user
    except ChainlitContextException:
        user = None
    found = _uuid(user.id) if isinstance(user, PersistedUser) else None
    if found is None:
        raise AccessRefused("Log in first.")
    return found


def build_data_layer(
    database_url: str,
    *,
    storage_engine: AsyncEngine,
    pool: PoolConfig | None = None,
    router: ReadRouter | None = None,
) -> KbDataLayer:
    """The data layer with attachments stored in PostgreSQL; history reads routed among
    the read replicas when `router` is given."""
    # postgresql+psycopg:// (async psycopg 3)
    return KbDataLayer(
        normalize_url(database_url), storage_engine=storage_engine, pool=pool, router=router
    )
