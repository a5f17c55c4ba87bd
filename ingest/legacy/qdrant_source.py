"""Read the legacy Qdrant collection with the real client (server URL or local path).

Points are read with the scroll API in batches, with payloads and vectors. The
collection is only read; local mode does take Qdrant's lock file in the folder.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient, models

from ingest.legacy.sqlite_source import LegacySourceError

__all__ = ["DEFAULT_COLLECTION", "LegacyPoint", "LegacyQdrant"]

DEFAULT_COLLECTION = "knowledgebase"


@dataclass(frozen=True)
class LegacyPoint:
    """One Qdrant point: its id as text, its vector (None when absent), its payload."""

    point_id: str
    raw_id: int | str
    vector: list[float] | None
    payload: dict[str, Any]


class LegacyQdrant:
    """The legacy collection: dimension, count, batched scroll, lookups and exact search."""

    def __init__(
        self,
        *,
        url: str | None = None,
        path: Path | None = None,
        collection: str = DEFAULT_COLLECTION,
        api_key: str | None = None,
    ) -> None:
        if (url is None) == (path is None):
            raise LegacySourceError(
                "Give exactly one Qdrant source.", hint="Use --qdrant-url URL or --qdrant-path DIR."
            )
        if path is not None:
            path = Path(path).expanduser()
            # Local mode creates a missing folder: refuse first, the source is read-only.
            if not (path / "collection").is_dir():
                raise LegacySourceError(
                    f"{path} is not a Qdrant local-mode folder (no collection/ inside).",
                    hint="Pass the folder the old app gave QdrantClient(path=...) "
                    "or use --qdrant-url.",
                )
            self.client = QdrantClient(path=str(path))
            self.where = str(path)
        else:
            self.client = QdrantClient(url=url, api_key=api_key)
            self.where = str(url)
        self.local = path is not None
        self.collection = collection
        try:
            names = [c.name for c in self.client.get_collections().collections]
        except Exception as exc:
            self.client.close()
            raise LegacySourceError(
                f"Cannot read Qdrant at {self.where}: {exc}",
                hint="Start the Qdrant server or fix --qdrant-url / --qdrant-path.",
            ) from None
        if collection not in names:
            self.client.close()
            raise LegacySourceError(
                f"Qdrant at {self.where} has no collection {collection!r} "
                f"(it has: {', '.join(sorted(names)) or 'none'}).",
                hint="Name the right one with --collection.",
            )
        self._vector_name, self.dimension, self.distance = self._vector_config()

    def _vector_config(self) -> tuple[str | None, int, str]:
        vectors = self.client.get_collection(self.collection).config.params.vectors
        if isinstance(vectors, models.VectorParams):
            return None, int(vectors.size), str(vectors.distance.value)
        if isinstance(vectors, dict) and len(vectors) == 1:
            name, params = next(iter(vectors.items()))
            return name, int(params.size), str(params.distance.value)
        raise LegacySourceError(
            f"Collection {self.collection!r} has {len(vectors or {})} named vectors; "
            "the legacy app used one.",
            hint="Migrate from a collection with a single vector per point.",
        )

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> LegacyQdrant:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def count(self) -> int:
        return int(self.client.count(self.collection, exact=True).count)

    def _vector(self, raw: Any) -> list[float] | None:
        if isinstance(raw, dict):
            raw = raw.get(self._vector_name or "", None)
        if raw is None:
            return None
        return [float(x) for x in raw]

    def _point(self, record: models.Record | models.ScoredPoint) -> LegacyPoint:
        return LegacyPoint(
            point_id=str(record.id),
            raw_id=record.id if isinstance(record.id, int) else str(record.id),
            vector=self._vector(record.vector),
            payload=dict(record.payload or {}),
        )

    def scroll(self, *, batch_size: int) -> Iterator[list[LegacyPoint]]:
        """Every point, in id order, `batch_size` at a time."""
        offset: Any = None
        while True:
            records, offset = self.client.scroll(
                self.collection,
                limit=batch_size,
                offset=offset,
                with_payload=True,
                with_vectors=True,
            )
            if records:
                yield [self._point(r) for r in records]
            if offset is None:
                return

    def retrieve(self, ids: Sequence[int | str]) -> dict[str, LegacyPoint]:
        records = self.client.retrieve(self.collection, ids=list(ids), with_vectors=True)
        return {str(r.id): self._point(r) for r in records}

    def nearest(
        self,
        vector: Sequence[float],
        *,
        user_keys: Sequence[str],
        exclude: Sequence[int | str],
        limit: int,
    ) -> list[LegacyPoint]:
        """Exact nearest points among those whose payload `user_id` is one of `user_keys`."""
        # Payload user ids were written as text or as numbers: match either form.
        strings = [str(k) for k in user_keys]
        numbers = [int(k) for k in strings if k.lstrip("-").isdigit()]
        should: list[models.Condition] = [
            models.FieldCondition(key="user_id", match=models.MatchAny(any=strings))
        ]
        if numbers:
            should.append(models.FieldCondition(key="user_id", match=models.MatchAny(any=numbers)))
        must_not: list[models.Condition] = (
            [models.HasIdCondition(has_id=list(exclude))] if exclude else []
        )
        response = self.client.query_points(
            self.collection,
            query=list(vector),
            using=self._vector_name,
            query_filter=models.Filter(should=should, must_not=must_not),
            # Local mode is always exact and warns about search_params.
            search_params=None if self.local else models.SearchParams(exact=True),
            limit=limit,
            with_payload=True,
        )
        return [self._point(p) for p in response.points]
