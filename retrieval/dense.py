"""Dense (vector) search through langchain-postgres's `PGVectorStore`, one user at a time.

The split over `document_chunks`:

- reads (the retriever's vector list, used by mode "vector" and as the dense half of
  "hybrid") go through langchain-postgres's `PGVectorStore` on a custom-table
  mapping (`chunk_id`, `text`, `embedding`, `metadata` + the source columns);
- writes go through `ingest.chunk_writer.ChunkStore`, because `PGVectorStore` opens and
  commits its own connections row by row: it can neither join the per-file
  transaction that makes indexing all-or-nothing nor write in batches.

`PGVectorStore` opens its own connections too, so the user scope cannot come from
`db.scoped.user_scope`. Instead each user gets a small async engine whose connections
START scoped, through libpq startup options: `role=kb_scoped` (the role row-level
security binds) and `app.user_id=<uuid>` (the key of the policies), plus
`hnsw.iterative_scan=relaxed_order` and `hnsw.ef_search` (without the iterative scan
an HNSW scan filtered by user silently returns ~4 rows of 10). Startup options are
the session's reset values, so even `RESET ALL` keeps the scope, and no connection is
ever shared between users. The SQL filters by `user_id` as well (the store's filter).

Per-user engines live in a small LRU; an evicted engine is disposed, and so are all
of a database's engines when the application's `Engine` is disposed, or at exit.
langchain-postgres runs its sync methods on an event loop in a background thread: the
async engines here are only ever used on that one loop.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Coroutine, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_postgres.v2.engine import PGEngine
from langchain_postgres.v2.vectorstores import PGVectorStore
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from db.scoped import SCOPED_ROLE, rls_enforced
from retrieval.search_sql import ChunkHit, SearchFilters

__all__ = [
    "MAX_USER_ENGINES",
    "close_user_stores",
    "dense_search",
    "ef_search_for",
    "start_dense_search",
    "user_vector_store",
]

# How many (database, user, ef_search) engines stay open; each holds at most
# `_POOL["pool_size"] + _POOL["max_overflow"]` connections.
MAX_USER_ENGINES = 16
_POOL: dict[str, Any] = {
    "pool_size": 1,
    "max_overflow": 3,
    "pool_pre_ping": True,
    "pool_recycle": 300,
}
_TABLE = "document_chunks"
_METADATA_COLUMNS = ["user_id", "source_type", "source_id", "source_url", "chunk_index"]

T = TypeVar("T")


class _QueryVectorsOnly(Embeddings):
    """The store's embedding service: searches here always pass the query vector."""

    def embed_query(self, text: str) -> list[float]:
        raise RuntimeError("the per-user PGVectorStore searches by vector only")

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise RuntimeError("writes go through ingest.chunk_writer.ChunkStore")


@dataclass(frozen=True)
class _Key:
    # The full URL (with its password) identifies the database; it is never logged.
    url: str
    user_id: uuid.UUID
    ef_search: int


@dataclass(frozen=True)
class _Entry:
    engine: AsyncEngine
    store: PGVectorStore


_lock = threading.Lock()
_entries: OrderedDict[_Key, _Entry] = OrderedDict()
_watched: weakref.WeakSet[Engine] = weakref.WeakSet()
_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="kb-pgvector", daemon=True).start()
        return _loop


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run_coroutine_threadsafe(coro, _background_loop()).result()


def ef_search_for(limit: int) -> int:
    """`hnsw.ef_search` for a search of `limit` rows: at least 100 and twice the limit,
    in steps of 100 (each value is its own engine), at most pgvector's 1000."""
    wanted = max(100, 2 * limit)
    return min(1000, -(-wanted // 100) * 100)


def _startup_options(engine: Engine, user_id: uuid.UUID, ef_search: int) -> str:
    options = [
        f"-c app.user_id={user_id}",
        "-c hnsw.iterative_scan=relaxed_order",
        f"-c hnsw.ef_search={ef_search}",
    ]
    # Without the role (a managed server that refused CREATEROLE) the SQL filter is
    # the only guard, exactly as in `db.scoped.user_scope`.
    if rls_enforced(engine):
        options.insert(0, f"-c role={SCOPED_ROLE}")
    given = engine.url.query.get("options")
    if given:  # keep options the deployment put in its URL (e.g. search_path)
        options.insert(0, given if isinstance(given, str) else " ".join(given))
    return " ".join(options)


def _open(engine: Engine, key: _Key) -> _Entry:
    url = engine.url.difference_update_query(["options"])
    async_engine = create_async_engine(
        url,
        connect_args={"options": _startup_options(engine, key.user_id, key.ef_search)},
        **_POOL,
    )
    try:
        store = PGVectorStore.create_sync(
            PGEngine.from_engine(async_engine, loop=_background_loop()),
            _QueryVectorsOnly(),
            _TABLE,
            id_column="chunk_id",
            content_column="text",
            embedding_column="embedding",
            metadata_columns=list(_METADATA_COLUMNS),
            metadata_json_column="metadata",
        )
    except BaseException:
        _run(async_engine.dispose())
        raise
    return _Entry(engine=async_engine, store=store)


def _watch(engine: Engine) -> None:
    """Dispose a database's per-user engines when the application disposes its own."""
    if engine in _watched:
        return
    _watched.add(engine)
    url = engine.url.render_as_string(hide_password=False)
    sa.event.listen(engine, "engine_disposed", lambda _engine: _close_url(url))


def user_vector_store(engine: Engine, user_id: uuid.UUID, *, ef_search: int = 100) -> PGVectorStore:
    """The `PGVectorStore` over `document_chunks` whose connections see only `user_id`."""
    key = _Key(engine.url.render_as_string(hide_password=False), uuid.UUID(str(user_id)), ef_search)
    with _lock:
        entry = _entries.get(key)
        if entry is not None:
            _entries.move_to_end(key)
            return entry.store
        _watch(engine)
    # Opening runs a query: outside the lock, so other users' searches go on meanwhile.
    entry = _open(engine, key)
    evicted: list[_Entry] = []
    with _lock:
        current = _entries.get(key)
        if current is not None:  # another thread opened it first: use that one
            evicted.append(entry)
            entry = current
        else:
            _entries[key] = entry
        while len(_entries) > MAX_USER_ENGINES:
            evicted.append(_entries.popitem(last=False)[1])
    for old in evicted:
        _run(old.engine.dispose())
    return entry.store


def _filter(user_id: uuid.UUID, filters: SearchFilters) -> dict[str, Any]:
    clauses: list[dict[str, Any]] = [{"user_id": {"$eq": str(user_id)}}]
    if filters.source_type:
        clauses.append({"source_type": {"$eq": filters.source_type}})
    if filters.source_id:
        clauses.append({"source_id": {"$eq": filters.source_id}})
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def start_dense_search(
    engine: Engine,
    *,
    user_id: uuid.UUID,
    query_vector: Sequence[float],
    limit: int,
    filters: SearchFilters | None = None,
) -> Future[list[ChunkHit]]:
    """`dense_search` started on the store's event loop; the caller can run its
    keyword query meanwhile (hybrid search) and then wait on the future."""
    store = user_vector_store(engine, user_id, ef_search=ef_search_for(limit))
    search = store.asimilarity_search_with_score_by_vector(
        [float(v) for v in query_vector],
        k=limit,
        filter=_filter(user_id, filters or SearchFilters()),
    )
    return asyncio.run_coroutine_threadsafe(_hits(search), _background_loop())


def dense_search(
    engine: Engine,
    *,
    user_id: uuid.UUID,
    query_vector: Sequence[float],
    limit: int,
    filters: SearchFilters | None = None,
) -> list[ChunkHit]:
    """The `limit` chunks of `user_id` nearest to `query_vector` (cosine), best first.

    `score` and `similarity` are the cosine similarity, 1 - the store's cosine
    distance. The iterative scan's `relaxed_order` may return rows slightly out of
    order, so they are sorted again here (ties by chunk id, for stable results).
    """
    return start_dense_search(
        engine, user_id=user_id, query_vector=query_vector, limit=limit, filters=filters
    ).result()


async def _hits(search: Awaitable[list[tuple[Document, float]]]) -> list[ChunkHit]:
    hits = []
    for document, distance in await search:
        metadata = dict(document.metadata)
        # The store merges the columns into the metadata; the uuid column would not
        # serialise as JSON, and the chunk's own metadata stores it as text.
        metadata["user_id"] = str(metadata["user_id"])
        similarity = 1.0 - float(distance)
        hits.append(
            ChunkHit(
                chunk_id=str(document.id),
                text=document.page_content,
                metadata=metadata,
                source_type=str(metadata["source_type"]),
                source_id=str(metadata["source_id"]),
                source_url=metadata.get("source_url"),
                chunk_index=int(metadata.get("chunk_index") or 0),
                score=similarity,
                similarity=similarity,
            )
        )
    hits.sort(key=lambda hit: (-hit.score, hit.chunk_id))
    return hits


def _close_url(url: str | None) -> int:
    with _lock:
        keys = [key for key in _entries if url is None or key.url == url]
        closing = [_entries.pop(key) for key in keys]
    for entry in closing:
        _run(entry.engine.dispose())
    return len(closing)


def close_user_stores(engine: Engine | None = None) -> int:
    """Dispose the per-user engines of `engine`'s database (all when None); how many."""
    return _close_url(engine.url.render_as_string(hide_password=False) if engine else None)


atexit.register(close_user_stores)
