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
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
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
        with self._lock:
            if self._retriever is None:
                self._retriever = Retriever(engine=read_engine, embeddings=embeddings)
            return self._retriever

    def opened_engines(self) -> dict[str, Engine | AsyncEngine]:
        """Every engine opened so far, by role (the metrics read their pools); opens none."""
        engines: dict[str, Engine | AsyncEngine] = {"primary": self.engine}
        with self._lock:
            if self._read_engine is not None:
                engines["read"] = self._read_engine
            if self._storage_engine is not None:
                engines["storage"] = self._storage_engine
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
            self._read_engine = self._storage_engine = None
            self._retriever = self._chain = None
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
