"""Incremental, all-or-nothing indexing of one source with LangChain's indexing API.

`index_source` hands the chunks of one source (a file, a Notion page) to
`langchain_core.indexing.index` with our `ChunkWriter` and `PgRecordManager`, both
bound to ONE `user_scope` transaction:

- a chunk's key is the sha256 of its text and metadata (which include the space, the
  source and the chunk index), so an unchanged chunk is skipped without embedding;
- `cleanup="scoped_full"` with the source as group id deletes, at the end, the
  chunks of this source that the new version no longer has, and nothing else;
- an error anywhere (parsing is done before, embedding or writing here) rolls the
  whole transaction back: the previous version stays intact and searchable.

Runs on one source are serialised with a transaction-level advisory lock, so the
record manager's start time is later than every record a previous run committed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.indexing import index
from sqlalchemy.engine import Connection, Engine

from db import chunks as chunk_repo
from db.models import DocumentChunk, IndexRecord
from db.scoped import user_scope
from db.source_files import FileBytes, delete_source_file, save_source_file
from ingest.chunk_writer import ChunkWriter
from ingest.record_manager import PgRecordManager

__all__ = ["IndexStats", "delete_source", "group_id_for", "index_source", "stored_file_hashes"]

_chunks = cast("sa.Table", DocumentChunk.__table__)
_records = cast("sa.Table", IndexRecord.__table__)


@dataclass(frozen=True)
class IndexStats:
    """What one indexing run did, in chunks."""

    added: int
    updated: int
    skipped: int
    deleted: int


def group_id_for(source_type: str, source_id: str) -> str:
    """The record manager's group id of a source (type included: ids of types may clash)."""
    return f"{source_type}:{source_id}"


def index_source(
    *,
    engine: Engine,
    embeddings: Embeddings,
    user_id: uuid.UUID,
    space_id: uuid.UUID,
    source_type: str,
    source_id: str,
    documents: Sequence[Document],
    source_url: str | None = None,
    file: FileBytes | None = None,
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> IndexStats:
    """Make `documents` (already split) the chunks of this source of `space_id`, indexed
    by `user_id` (row-level security requires them to be an editor there); empty
    deletes it. `file`, when given, is kept in `source_files` in the same transaction
    (the file a citation opens). `progress(embedded, total)` is called after each
    embedded batch.
    """
    prepared = [
        _prepare(
            doc,
            position,
            space_id=space_id,
            source_type=source_type,
            source_id=source_id,
            source_url=source_url,
        )
        for position, doc in enumerate(documents)
    ]
    group = group_id_for(source_type, source_id)
    with user_scope(engine, user_id) as connection:
        _lock_source(connection, space_id, group)
        records = PgRecordManager(connection=connection, space_id=space_id)
        if not prepared:
            removed = _delete_in(connection, records, source_id, [source_type])
            return IndexStats(added=0, updated=0, skipped=0, deleted=removed)
        _forget_records_without_chunks(connection, records, group)
        store = ChunkWriter(
            connection=connection,
            embeddings=embeddings,
            space_id=space_id,
            added_by=user_id,
            batch_size=batch_size,
        )
        if progress is not None:
            store.on_batch = lambda done: progress(done, len(prepared))
        result = index(
            prepared,
            records,
            store,
            batch_size=batch_size,
            cleanup="scoped_full",
            source_id_key=lambda _doc: group,
            key_encoder="sha256",
        )
        strays = _delete_chunks_without_records(connection, records, source_type, source_id)
        if file is not None:
            save_source_file(
                connection, space_id=space_id, source_id=source_id, file=file, added_by=user_id
            )
        return IndexStats(
            added=result["num_added"],
            updated=result["num_updated"],
            skipped=result["num_skipped"],
            deleted=result["num_deleted"] + strays,
        )


def delete_source(
    *,
    engine: Engine,
    user_id: uuid.UUID,
    space_id: uuid.UUID,
    source_id: str,
    source_type: str | None = None,
) -> int:
    """Remove a source's chunks, indexing records and stored file from `space_id`, as
    `user_id` (an editor there); returns the chunks removed."""
    with user_scope(engine, user_id) as connection:
        records = PgRecordManager(connection=connection, space_id=space_id)
        if source_type is not None:
            types = [source_type]
        else:
            types = list(
                connection.execute(
                    sa.select(_chunks.c.source_type)
                    .where(_chunks.c.space_id == space_id, _chunks.c.source_id == source_id)
                    .distinct()
                ).scalars()
            )
        for kind in types:
            _lock_source(connection, space_id, group_id_for(kind, source_id))
        removed = _delete_in(connection, records, source_id, types)
        if "file" in types:
            delete_source_file(connection, space_id=space_id, source_id=source_id)
        return removed


def stored_file_hashes(
    connection: Connection, *, space_id: uuid.UUID, source_type: str, source_ids: Sequence[str]
) -> dict[str, set[str | None]]:
    """The `file_hash` values stored in each source's chunks (sources with none are absent)."""
    file_hash = _chunks.c.metadata["file_hash"].astext
    rows = connection.execute(
        sa.select(_chunks.c.source_id, file_hash)
        .where(
            _chunks.c.space_id == space_id,
            _chunks.c.source_type == source_type,
            _chunks.c.source_id.in_(list(source_ids)),
        )
        .distinct()
    )
    found: dict[str, set[str | None]] = {}
    for source_id, value in rows:
        found.setdefault(source_id, set()).add(value)
    return found


def _prepare(
    document: Document,
    position: int,
    *,
    space_id: uuid.UUID,
    source_type: str,
    source_id: str,
    source_url: str | None,
) -> Document:
    # The metadata is part of the chunk key, so it must serialise the same way each run;
    # space and source in it make keys distinct across spaces and sources. Who added it
    # is not part of it: another editor re-uploading the same file changes nothing.
    metadata: dict[str, Any] = json.loads(json.dumps(document.metadata, default=str))
    metadata.setdefault("chunk_index", position)
    metadata |= {"space_id": str(space_id), "source_type": source_type, "source_id": source_id}
    if source_url is not None:
        metadata["source_url"] = source_url
    return Document(page_content=document.page_content, metadata=metadata)


def _lock_source(connection: Connection, space_id: uuid.UUID, group: str) -> None:
    connection.execute(
        sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"kb-index/{space_id}/{group}"},
    )


def _delete_in(
    connection: Connection,
    records: PgRecordManager,
    source_id: str,
    source_types: Sequence[str],
) -> int:
    removed = 0
    for kind in source_types:
        removed += chunk_repo.delete_source(
            connection, space_id=records.space_id, source_id=source_id, source_type=kind
        )
    records.delete_groups([group_id_for(kind, source_id) for kind in source_types])
    return removed


def _forget_records_without_chunks(
    connection: Connection, records: PgRecordManager, group: str
) -> None:
    # A record whose chunk is gone (deleted by another path) would make the indexing
    # API skip that chunk forever; dropping the record gets it re-embedded.
    missing = ~sa.exists().where(
        _chunks.c.chunk_id == _records.c.key, _chunks.c.space_id == records.space_id
    )
    connection.execute(
        sa.delete(_records).where(
            _records.c.namespace == records.namespace,
            _records.c.space_id == records.space_id,
            _records.c.group_id == group,
            missing,
        )
    )


def _delete_chunks_without_records(
    connection: Connection, records: PgRecordManager, source_type: str, source_id: str
) -> int:
    # Chunks of this source written without records (e.g. by the legacy migration) are
    # not seen by the indexing API's cleanup; the new version replaces them too.
    recorded = sa.exists().where(
        _records.c.key == _chunks.c.chunk_id,
        _records.c.namespace == records.namespace,
        _records.c.space_id == records.space_id,
    )
    result = connection.execute(
        sa.delete(_chunks).where(
            _chunks.c.space_id == records.space_id,
            _chunks.c.source_type == source_type,
            _chunks.c.source_id == source_id,
            ~recorded,
        )
    )
    return int(result.rowcount or 0)
