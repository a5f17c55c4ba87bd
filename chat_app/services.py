"""What the Chainlit app needs, built once per process from the settings.

`get_services()` opens the runtime lazily on first use (never at import time, so
importing the app module stays cheap and tests can build their own `Services`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.embeddings import Embeddings
from sqlalchemy.engine import Engine

from chat_app.settings import Settings

if TYPE_CHECKING:
    from chat_app.runtime import Runtime

__all__ = ["Services", "close_services", "get_services", "set_services"]


@dataclass
class Services:
    """The engine, embeddings and answer chain shared by every chat session."""

    settings: Settings
    engine: Engine
    database_url: str
    secret_key: str
    _embeddings: Embeddings | None = None
    _chain: Any = None
    runtime: Runtime | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def embeddings(self) -> Embeddings:
        """Loaded on first use (~8 s for the default model), then shared."""
        with self._lock:
            if self._embeddings is None:
                assert self.runtime is not None, "Services without a runtime need embeddings"
                self._embeddings = self.runtime.embeddings
            return self._embeddings

    @property
    def chain(self) -> Any:
        """The `retrieval.chain.AnswerChain`, built once."""
        if self._chain is None:
            embeddings = self.embeddings
            with self._lock:
                if self._chain is None:
                    self._chain = _build_chain(self.settings, self.engine, embeddings)
        return self._chain

    @property
    def llm_label(self) -> str | None:
        return self.settings.llm or None


def _build_chain(settings: Settings, engine: Engine, embeddings: Embeddings) -> Any:
    from retrieval.chain import build_answer_chain
    from retrieval.llm import build_chat_model

    llm = build_chat_model(
        settings.llm,
        base_url=settings.llm_base_url,
        api_key=settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
        temperature=settings.llm_temperature,
    )
    return build_answer_chain(
        engine=engine,
        embeddings=embeddings,
        llm=llm,
        default_mode=settings.retrieval_mode,
        default_k=settings.top_k,
        score_threshold=settings.score_threshold,
    )


def from_runtime(rt: Runtime) -> Services:
    return Services(
        settings=rt.settings,
        engine=rt.engine,
        database_url=rt.database_url,
        secret_key=rt.secret_key,
        runtime=rt,
    )


_services: Services | None = None
_services_lock = threading.Lock()


def get_services() -> Services:
    """The process-wide services, opened from the environment on first call."""
    global _services
    with _services_lock:
        if _services is None:
            from chat_app.runtime import open_runtime

            _services = from_runtime(open_runtime())
        return _services


def close_services() -> None:
    """Release the process's runtime (pool, embedded-server handle) at shutdown."""
    global _services
    with _services_lock:
        if _services is not None and _services.runtime is not None:
            _services.runtime.close()
        _services = None


def set_services(services: Services | None) -> None:
    """Install services built elsewhere (tests build theirs on a test database)."""
    global _services
    with _services_lock:
        _services = services
