"""Phase 6: Qdrant points -> `document_chunks`, vectors copied as they are.

Vectors are copied when the collection's dimension matches `document_chunks`;
with `--reembed`, or a dimension mismatch, the payload text is embedded again
(only for chunks not migrated yet, so a resumed run does no repeated work).
Points without text or with an unknown user are reported and skipped; a chunk_id
seen twice keeps its first point. Chunks already present are left as they are.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import sqlalchemy as sa
from langchain_core.embeddings import Embeddings
from sqlalchemy.engine import Connection

from db.chunks import ChunkRow, insert_chunks
from db.errors import InvalidInput
from db.models import DocumentChunk
from ingest.legacy.coerce import parse_int, parse_json, parse_text
from ingest.legacy.hnsw import defer_index, restore_index
from ingest.legacy.mapping import chunk_id_of
from ingest.legacy.qdrant_source import LegacyPoint, LegacyQdrant
from ingest.legacy.report import SampledChunk, TableReport
from ingest.legacy.state import RunState, UserRef

__all__ = ["ChunkPhase", "migrate_chunks"]

_chunks = cast(sa.Table, DocumentChunk.__table__)
_KNOWN_PAYLOAD = {
    "chunk_id",
    "user_id",
    "text",
    "source_type",
    "source_id",
    "source_url",
    "chunk_index",
    "metadata",
}
_SOURCE_TYPE_WIDTH = 32


@dataclass
class ChunkPhase:
    """What the vector checks need from the chunk phase."""

    sample: list[SampledChunk] = field(default_factory=list)
    seen_migrated: int = 0
    skipped_points: list[int | str] = field(default_factory=list)
    #: target user -> the payload `user_id` values that mapped to them (for Qdrant filters)
    payload_users: dict[uuid.UUID, set[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Candidate:
    point: LegacyPoint
    user: UserRef
    row: ChunkRow


def _metadata(point: LegacyPoint) -> dict[str, Any]:
    parsed = parse_json(point.payload.get("metadata"))
    metadata: dict[str, Any] = dict(parsed) if isinstance(parsed, dict) else {}
    for key, value in point.payload.items():
        if key not in _KNOWN_PAYLOAD:
            metadata.setdefault(key, value)
    metadata["legacy_point_id"] = point.point_id
    return metadata


def _source_type(payload: dict[str, Any], url: str | None) -> str:
    value = parse_text(payload.get("source_type"))
    if value is None:
        value = "notion" if url and "notion.so" in url else "file"
    return value[:_SOURCE_TYPE_WIDTH]


def _candidate(
    point: LegacyPoint, state: RunState, report: TableReport, seen: dict[str, str], copy: bool
) -> _Candidate | None:
    payload = point.payload
    chunk_id = chunk_id_of(point.point_id, payload)
    raw_user = payload.get("user_id")
    user = state.user(parse_text(raw_user))
    if user is None:
        reason = "no user_id in payload" if raw_user is None else f"unknown user {raw_user!r}"
        report.skip(point.point_id, reason)
        return None
    text = payload.get("text")
    if not isinstance(text, str) or not text.strip():
        report.skip(point.point_id, "no text in payload")
        return None
    if chunk_id in seen:
        report.skip(
            point.point_id, f"duplicate chunk_id {chunk_id!r} (kept point {seen[chunk_id]})"
        )
        return None
    if copy and point.vector is None:
        report.skip(point.point_id, "no vector (use --reembed to embed its text)")
        return None
    seen[chunk_id] = point.point_id
    if "chunk_id" not in payload:
        report.note(
            point.point_id, "no chunk_id in payload: the point id is used", action="defaulted"
        )
    metadata = _metadata(point)
    source_id = parse_text(payload.get("source_id")) or parse_text(metadata.get("source"))
    if source_id is None:
        report.note(point.point_id, "no source_id: 'legacy' used", action="defaulted")
    url = parse_text(payload.get("source_url"))
    return _Candidate(
        point,
        user,
        ChunkRow(
            chunk_id=chunk_id,
            space_id=state.space_of(user.id),
            added_by=user.id,
            text=text,
            embedding=point.vector or [],
            source_type=_source_type(payload, url),
            source_id=source_id or "legacy",
            source_url=url,
            chunk_index=parse_int(payload.get("chunk_index")) or 0,
            metadata=metadata,
        ),
    )


def _embed(rows: list[ChunkRow], embeddings: Embeddings, dimension: int) -> list[ChunkRow]:
    vectors = embeddings.embed_documents([r.text for r in rows])
    if vectors and len(vectors[0]) != dimension:
        raise InvalidInput(
            f"The embedding model makes {len(vectors[0])}-d vectors; "
            f"document_chunks holds {dimension}-d.",
            hint="Configure the model the database was set up with "
            "(or reset the database for this one).",
        )
    return [dataclasses.replace(r, embedding=v) for r, v in zip(rows, vectors, strict=True)]


def migrate_chunks(
    qdrant: LegacyQdrant,
    state: RunState,
    *,
    dimension: int,
    embeddings: Callable[[], Embeddings] | None,
) -> ChunkPhase:
    report = state.report.table(f"qdrant {qdrant.collection}", "document_chunks")
    phase = ChunkPhase()
    copy = not state.options.reembed and qdrant.dimension == dimension
    if copy:
        state.report.vector_mode = f"copied as they are ({dimension}-d)"
    else:
        why = (
            "--reembed"
            if state.options.reembed
            else (f"dimension {qdrant.dimension} != {dimension}")
        )
        if embeddings is None:
            raise InvalidInput(
                f"The Qdrant vectors must be re-embedded ({why}) but no embedding model was given.",
                hint="Run `kb migrate` with the embedding model configured.",
            )
        state.report.vector_mode = f"re-embedded from payload text ({why})"
    skip_embedding = not copy and state.options.dry_run
    if skip_embedding:
        state.report.notes.append("dry run: texts were not embedded and chunks not written")
    model = None if copy or skip_embedding or embeddings is None else embeddings()
    rng = random.Random(0)  # the same sample on every run
    total = qdrant.count()
    state.announce("vectors", total)
    seen: dict[str, str] = {}
    deferred = defer_index(state.target, points=total, threshold=state.options.bulk_index_threshold)
    try:
        for number, points in enumerate(
            qdrant.scroll(batch_size=state.options.batch_size), start=1
        ):
            report.read += len(points)
            candidates = []
            for point in points:
                found = _candidate(point, state, report, seen, copy)
                if found is None:
                    phase.skipped_points.append(point.raw_id)
                else:
                    candidates.append(found)
            by_user: dict[uuid.UUID, list[_Candidate]] = {}
            for c in candidates:
                by_user.setdefault(c.user.id, []).append(c)
            migrated: list[_Candidate] = []
            for user_id, items in by_user.items():
                migrated += _write_user_batch(
                    state,
                    phase,
                    report,
                    user_id,
                    items,
                    model=model,
                    dimension=dimension,
                    write=not skip_embedding,
                )
            for c in migrated:
                phase.payload_users.setdefault(c.user.id, set()).add(
                    str(c.point.payload["user_id"])
                )
                _offer(phase, rng, state.options.vector_sample, c)
            state.batch_done("vectors", number, report.read, total)
    except BaseException:
        if deferred is not None:
            with contextlib.suppress(Exception):  # keep the original error
                restore_index(state.target, deferred)
        raise
    if deferred is not None:
        seconds = restore_index(state.target, deferred)
        state.report.notes.append(f"HNSW index built once after the bulk load ({seconds:.1f} s)")
    return phase


def _space_chunk_ids(conn: Connection, space_id: uuid.UUID, ids: list[str]) -> set[str]:
    query = sa.select(_chunks.c.chunk_id).where(
        _chunks.c.space_id == space_id, _chunks.c.chunk_id.in_(ids)
    )
    return set(conn.execute(query).scalars())


def _write_user_batch(
    state: RunState,
    phase: ChunkPhase,
    report: TableReport,
    user_id: uuid.UUID,
    items: list[_Candidate],
    *,
    model: Embeddings | None,
    dimension: int,
    write: bool,
) -> list[_Candidate]:
    """One user's share of a batch in one transaction (into their personal space);
    returns the candidates now stored."""
    ids = [c.row.chunk_id for c in items]
    space_id = state.space_of(user_id)
    with state.target.scoped(user_id) as conn:
        have = _space_chunk_ids(conn, space_id, ids)
        new = [c.row for c in items if c.row.chunk_id not in have]
        if new and model is not None:
            new = _embed(new, model, dimension)
            state.report.texts_embedded += len(new)
        if not write:
            stored = set(ids)  # dry run without embedding: nothing written, nothing refused
        elif new:
            insert_chunks(conn, new)
            # insert_chunks never overwrites another space's row with the same chunk_id
            # (row-level security hides it): whatever is still missing was refused.
            stored = _space_chunk_ids(conn, space_id, ids)
        else:
            stored = have
    refused = [c for c in items if c.row.chunk_id not in stored]
    for c in refused:
        report.skip(
            c.point.point_id,
            f"chunk_id {c.row.chunk_id!r} already belongs to another user in the target",
        )
        phase.skipped_points.append(c.point.raw_id)
    report.written += len(new) - len(refused)
    report.present += len(have)
    return [c for c in items if c.row.chunk_id in stored]


def _offer(phase: ChunkPhase, rng: random.Random, size: int, c: _Candidate) -> None:
    """Reservoir sampling: every migrated point has the same chance to be checked."""
    phase.seen_migrated += 1
    item = SampledChunk(c.row.chunk_id, c.point.raw_id, c.user.id, c.row.text)
    if len(phase.sample) < size:
        phase.sample.append(item)
        return
    slot = rng.randrange(phase.seen_migrated)
    if slot < size:
        phase.sample[slot] = item
