"""The composition root: settings -> database URL, engine, embeddings.

CLI commands and the Chainlit app build one `Runtime` and pass its parts down.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from langchain_core.embeddings import Embeddings
from sqlalchemy.engine import Engine

from chat_app.settings import Settings, load_settings
from db.embedded import EmbeddedServer, start_embedded
from db.engine import PoolConfig, check_connection, make_engine, normalize_url
from db.migrate import check_schema, vector_dimension

__all__ = ["Runtime", "open_runtime", "resolve_database"]


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


@dataclass
class Runtime:
    """Everything a command or the app needs, built once."""

    settings: Settings
    database_url: str
    engine: Engine
    embedded: EmbeddedServer | None = field(default=None)

    @cached_property
    def embeddings(self) -> Embeddings:
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
    def secret_key(self) -> str:
        """Key material for encrypting secrets at rest (Notion tokens)."""
        return self.settings.persistent_secret("secret_key", self.settings.secret_key)

    def close(self) -> None:
        self.engine.dispose()
        if self.embedded is not None:
            self.embedded.stop()


def open_runtime(settings: Settings | None = None, *, require_schema: bool = True) -> Runtime:
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
    return Runtime(settings=settings, database_url=url, engine=engine, embedded=embedded)
