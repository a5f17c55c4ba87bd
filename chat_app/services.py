"""The composition root: one `Services` object built from `Settings`.

It owns every engine (the synchronous one for writes and repositories, the read
engine for searches, the attachments' engine), the embedding model, the retriever
and answer chain, and it builds the options the lower packages take (ingestion,
Notion). The CLI commands and the Chainlit app each open one and hand it to the
code they call; nothing below `chat_app` reads settings or keeps resources of its
own. `close()` releases everything, the embedded server's handle included.

Async engines belong to the event loop that first uses them: the app uses its one
loop; CLI commands run their async work through `Services.run`, which disposes the
async engines before its loop ends.

With read replicas configured, `read_router` picks the server of each search and
history read, and `note_writes` records a person's write position after their writes
so their next reads see them (`db.read_positions`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_app.metrics import Metrics
from chat_app.settings import Settings, load_settings
from db.embedded import EmbeddedServer, start_embedded
from db.engine import PoolConfig, check_connection, make_async_engine, make_engine, normalize_url
from db.read_positions import note_writes
from db.replicas import ReadRouter, Replica, replica_name
from db.schema import check_schema, vector_dimension
from db.scoped import make_read_engine
from ingest.files import IngestOptions
from ingest.loaders import LoadOptions
from ingest.loaders.options import ArchiveLimits, OcrOptions
from ingest.notion.service import NotionOptions
from retrieval.chain import AnswerChain, AnswerConfig
from retrieval.retriever import Retriever

if TYPE_CHECKING:
    from chat_app.jobs.queue import JobQueue

__all__ = ["Services", "open_services", "resolve_database"]

T = TypeVar("T")
log = logging.getLogger("kb.services")
# Replicas that do not answer within this are skipped (unless the URL sets its own).
REPLICA_CONNECT_TIMEOUT_SECONDS = 3


def resolve_database(settings: Settings) -> tuple[str, EmbeddedServer | None]:
    """The configured server, or the embedded one (started or attached to)."""
    if settings.database_url:
        return normalize_url(settings.database_url), None
    server = start_embedded(settings.pgdata_dir)
    return server.url, server


def pool_config(settings: Settings) -> PoolConfig:
    return PoolConfig(
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=settings.db_pool_pre_ping,
        pool_recycle=settings.db_pool_recycle,
    )


def _with_connect_timeout(url: str) -> str:
    from sqlalchemy.engine import make_url

    parsed = make_url(normalize_url(url))
    if "connect_timeout" not in parsed.query:
        parsed = parsed.update_query_dict({"connect_timeout": str(REPLICA_CONNECT_TIMEOUT_SECONDS)})
    return parsed.render_as_string(hide_password=False)


@dataclass(eq=False)
class Services:
    """Everything a command or the app needs, built once from the settings.

    `embeddings` may be given (tests pass deterministic fakes); otherwise the
    configured model is loaded on first use (~8 s for the default one).
    """

    settings: Settings
    engine: Engine
    database_url: str
    embedded: EmbeddedServer | None = None
    embeddings_override: Embeddings | None = field(default=None, repr=False)
    metrics: Metrics = field(default_factory=Metrics, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _embeddings: Embeddings | None = field(default=None, repr=False)
    _read_engine: AsyncEngine | None = field(default=None, repr=False)
    _storage_engine: AsyncEngine | None = field(default=None, repr=False)
    _read_router: ReadRouter | None = field(default=None, repr=False)
    _retriever: Retriever | None = field(default=None, repr=False)
    _chain: AnswerChain | None = field(default=None, repr=False)
    _job_queue: JobQueue | None = field(default=None, repr=False)

    # -- shared resources ---------------------------------------------------------

    @property
    def embeddings(self) -> Embeddings:
        """The embedding model, loaded once (thread-safe) and checked against the
        database's vector dimension."""
        with self._lock:
            if self._embeddings is None:
                self._embeddings = self.embeddings_override or self._load_embeddings()
            return self._embeddings

    def _load_embeddings(self) -> Embeddings:
        from retrieval.embeddings import check_dimension, load_embeddings, model_dimension

        check_dimension(
            model_dimension(self.settings.embedding_model), vector_dimension(self.engine)
        )
        return load_embeddings(
            self.settings.embedding_model,
            batch_size=self.settings.embedding_batch_size,
            backend=self.settings.embedding_backend,
            cache_dir=self.settings.resolved_models_dir,
        )

    @property
    def embeddings_loaded(self) -> bool:
        """Whether the embedding model is in memory (readiness: the first question does
        not wait for it)."""
        return self._embeddings is not None

    @cached_property
    def secret_key(self) -> str:
        """Key material for encrypting secrets at rest (Notion tokens)."""
        return self.settings.persistent_secret("secret_key", self.settings.secret_key)

    @property
    def read_engine(self) -> AsyncEngine:
        """The async engine searches run on; connections scoped at checkout."""
        with self._lock:
            if self._read_engine is None:
                self._read_engine = make_read_engine(self.database_url, pool_config(self.settings))
            return self._read_engine

    @property
    def read_router(self) -> ReadRouter | None:
        """Routes searches and history reads among the primary and the read replicas
        (`KB_DATABASE_REPLICA_URLS`); None without replicas."""
        urls = self.settings.replica_urls
        if not urls:
            return None
        primary = self.read_engine
        with self._lock:
            if self._read_router is None:
                pool = pool_config(self.settings)
                self._read_router = ReadRouter(
                    primary=primary,
                    control=make_async_engine(
                        self.database_url, PoolConfig(pool_size=2, max_overflow=8)
                    ),
                    replicas=[
                        Replica(
                            name=replica_name(url),
                            url=_with_connect_timeout(url),
                            engine=make_read_engine(_with_connect_timeout(url), pool),
                        )
                        for url in urls
                    ],
                    max_lag_seconds=self.settings.replica_max_lag_seconds,
                    check_seconds=self.settings.replica_check_seconds,
                    wait_seconds=self.settings.replica_wait_seconds,
                )
            return self._read_router

    def opened_read_router(self) -> ReadRouter | None:
        """The router if it exists already (the metrics never open one)."""
        with self._lock:
            return self._read_router

    @property
    def storage_engine(self) -> AsyncEngine:
        """A small async pool for attachments (reads are per click, writes per element)."""
        with self._lock:
            if self._storage_engine is None:
                self._storage_engine = make_async_engine(
                    self.database_url, PoolConfig(pool_size=5, max_overflow=5)
                )
            return self._storage_engine

    @property
    def retriever(self) -> Retriever:
        embeddings = self.embeddings  # outside the lock: loading takes seconds
        read_engine = self.read_engine
        router = self.read_router
        with self._lock:
            if self._retriever is None:
                self._retriever = Retriever(
                    engine=read_engine, embeddings=embeddings, router=router
                )
            return self._retriever

    def opened_engines(self) -> dict[str, Engine | AsyncEngine]:
        """Every engine opened so far, by role (the metrics read their pools); opens none."""
        engines: dict[str, Engine | AsyncEngine] = {"primary": self.engine}
        with self._lock:
            if self._read_engine is not None:
                engines["read"] = self._read_engine
            if self._storage_engine is not None:
                engines["storage"] = self._storage_engine
            router = self._read_router
        if router is not None:
            engines["control"] = router.control
            for replica in router.replicas:
                engines[f"replica {replica.name}"] = replica.engine
        return engines

    def chat_model(self) -> BaseChatModel | None:
        """The configured chat model, or None (extractive answers)."""
        from retrieval.llm import build_chat_model

        settings = self.settings
        return build_chat_model(
            settings.llm,
            base_url=settings.llm_base_url,
            api_key=settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
            temperature=settings.llm_temperature,
        )

    def answer_chain(self) -> AnswerChain:
        """The chain every question goes through, built once."""
        retriever = self.retriever
        with self._lock:
            if self._chain is None:
                self._chain = AnswerChain(
                    retriever=retriever,
                    engine=self.engine,
                    llm=self.chat_model(),
                    config=AnswerConfig(
                        mode=self.settings.retrieval_mode,
                        k=self.settings.top_k,
                        score_threshold=self.settings.score_threshold,
                    ),
                )
            return self._chain

    def job_queue(self) -> JobQueue:
        """The background job queue (procrastinate) on this database."""
        from chat_app.jobs.queue import JobQueue

        with self._lock:
            if self._job_queue is None:
                self._job_queue = JobQueue(self)
            return self._job_queue

    # -- writes a person reads next ---------------------------------------------------

    def note_writes(self, user_ids: Iterable[uuid.UUID]) -> None:
        """After writes by (or affecting) `user_ids` committed: their next reads must see
        them, so replicas serve those reads only once they have replayed this far
        (`db.read_positions`). Always noted (one tiny upsert), so a worker or CLI
        process without the replica setting still serves the web processes that have
        it; a failure is logged, never raised (the write itself succeeded)."""
        people = list(user_ids)
        if not people:
            return
        try:
            with self.engine.begin() as connection:
                note_writes(connection, people)
        except Exception:
            log.warning("could not note a write position for read-your-writes", exc_info=True)

    # -- options handed to the lower packages ----------------------------------------

    def ingest_options(self) -> IngestOptions:
        settings = self.settings
        return IngestOptions(
            chunk_size=settings.chunk_size,
            chunk_overlap=settings.chunk_overlap,
            max_bytes=settings.max_file_bytes,
            batch_size=settings.embedding_batch_size,
            load=LoadOptions(
                ocr=OcrOptions(
                    enabled=settings.ocr_enabled,
                    languages=settings.ocr_languages,
                    dpi=settings.ocr_dpi,
                    jobs=settings.ocr_jobs,
                ),
                archive=ArchiveLimits(
                    max_expanded_bytes=int(settings.archive_max_expanded_mb * 2**20),
                    max_ratio=settings.archive_max_ratio,
                    max_members=settings.archive_max_members,
                ),
            ),
        )

    def notion_options(self) -> NotionOptions:
        settings = self.settings
        return NotionOptions(
            secret_key=self.secret_key,
            base_url=settings.notion_base_url,
            requests_per_second=settings.notion_requests_per_second,
            max_retries=settings.notion_max_retries,
            chunk_size=settings.chunk_size,
            chunk_overlap=settings.chunk_overlap,
        )

    # -- lifecycle ------------------------------------------------------------------

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run async work on a fresh event loop (CLI commands), disposing the async
        engines before the loop closes."""

        async def main() -> T:
            try:
                return await work
            finally:
                await self.aclose()

        return asyncio.run(main())

    async def aclose(self) -> None:
        """Dispose the async engines (they belong to the running loop)."""
        with self._lock:
            engines = [e for e in (self._read_engine, self._storage_engine) if e is not None]
            router = self._read_router
            self._read_engine = self._storage_engine = self._read_router = None
            self._retriever = self._chain = None
        if router is not None:
            await router.dispose()
        for engine in engines:
            await engine.dispose()

    def close(self) -> None:
        """Release the pool and the embedded server's handle (the last process to let
        go stops the server). Async engines must be closed with `aclose` first."""
        self.engine.dispose()
        if self.embedded is not None:
            self.embedded.stop()


def open_services(settings: Settings | None = None, *, require_schema: bool = True) -> Services:
    """Connect (embedded by default), optionally check the schema is at head."""
    settings = settings or load_settings()
    url, embedded = resolve_database(settings)
    engine = make_engine(url, pool_config(settings))
    try:
        check_connection(engine)
        if require_schema:
            check_schema(engine)
    except Exception:
        engine.dispose()
        if embedded is not None:
            embedded.stop()
        raise
    return Services(settings=settings, engine=engine, database_url=url, embedded=embedded)
