"""Index a retrieval benchmark's corpus (BEIR format) for `kb eval`.

The documents go into the personal space of a dedicated, login-less user
(`eval:<name>`): a space of their own, one chunk per document (title + text, as BEIR
does); the corpus fingerprint stored on that user makes later runs skip the
embedding work.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from langchain_core.embeddings import Embeddings
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from db.chunks import ChunkRow, insert_chunks
from db.models import DocumentChunk, User
from db.scoped import user_scope
from db.spaces import personal_space_id
from db.users import add_user, get_user

__all__ = ["SOURCE_TYPE", "IndexReport", "eval_user_identifier", "index_eval_corpus", "passage"]

SOURCE_TYPE = "beir"
Progress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True)
class IndexReport:
    user_id: uuid.UUID
    space_id: uuid.UUID
    documents: int
    embedded: int  # 0 when the corpus was already indexed
    seconds: float


def eval_user_identifier(name: str) -> str:
    return f"eval:{name}"


def passage(title: str, text: str) -> str:
    """What gets embedded: title and text, as BEIR's dense baselines do."""
    return f"{title}\n{text}" if title else text


def _model_name(embeddings: Embeddings) -> str:
    return str(getattr(embeddings, "model_name", type(embeddings).__name__))


def index_eval_corpus(
    *,
    engine: Engine,
    embeddings: Embeddings,
    name: str,
    corpus: Mapping[str, tuple[str, str]],
    fingerprint: str,
    block_size: int = 256,
    progress: Progress | None = None,
) -> IndexReport:
    """Index `corpus` (doc id -> (title, text)) into the dataset's evaluation user,
    unless the same corpus is indexed already with the same model."""
    started = time.perf_counter()
    stamp = {"corpus_sha256": fingerprint, "model": _model_name(embeddings)}
    with Session(engine) as session:
        user = get_user(session=session, identifier=eval_user_identifier(name))
        if user is None:
            # No password, and a login no identity provider issues ("eval:..."): nobody
            # can log in as an evaluation user. It stays active because row-level
            # security admits active members only.
            user = add_user(session=session, identifier=eval_user_identifier(name))
        user.is_active = True  # earlier versions disabled it
        session.commit()
        user_id, known = user.id, dict(user.metadata_ or {}).get("eval")
        space_id = personal_space_id(session, user_id=user_id)
    if known == {**stamp, "documents": len(corpus)} and _count(engine, user_id, space_id) == len(
        corpus
    ):
        return IndexReport(user_id, space_id, len(corpus), 0, time.perf_counter() - started)

    doc_ids = list(corpus)
    vectors: list[list[float]] = []
    # Blocks larger than the model's batch let sentence-transformers sort by length.
    for start in range(0, len(doc_ids), block_size):
        block = doc_ids[start : start + block_size]
        vectors.extend(embeddings.embed_documents([passage(*corpus[d]) for d in block]))
        if progress:
            progress(len(vectors), len(doc_ids))
    rows = [
        ChunkRow(
            chunk_id=f"{SOURCE_TYPE}:{name}:{doc_id}",
            space_id=space_id,
            added_by=user_id,
            text=corpus[doc_id][1],
            embedding=vector,
            source_type=SOURCE_TYPE,
            source_id=doc_id,
            metadata={"title": corpus[doc_id][0], "dataset": name},
        )
        for doc_id, vector in zip(doc_ids, vectors, strict=True)
    ]
    with user_scope(engine, user_id) as connection:
        connection.execute(sa.delete(DocumentChunk).where(DocumentChunk.space_id == space_id))
        insert_chunks(connection, rows)
    with Session(engine) as session:
        session.execute(
            sa.update(User)
            .where(User.id == user_id)
            .values(metadata_={"eval": {**stamp, "documents": len(rows)}})
        )
        session.commit()
    return IndexReport(user_id, space_id, len(rows), len(rows), time.perf_counter() - started)


def _count(engine: Engine, user_id: uuid.UUID, space_id: uuid.UUID) -> int:
    with user_scope(engine, user_id) as connection:
        query = sa.select(sa.func.count()).where(DocumentChunk.space_id == space_id)
        return int(connection.execute(query).scalar_one())
