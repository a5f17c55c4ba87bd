"""Deterministic stand-ins where the model is not the point of a test."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable

from langchain_core.embeddings import Embeddings

from db.models import User

#: The `make_user` fixture: make_user("alice", password=..., **add_user kwargs) -> User
MakeUser = Callable[..., User]

_WORD = re.compile(r"[a-z0-9]+")


class HashEmbeddings(Embeddings):
    """Bag-of-words hashed into `dimension` buckets, L2-normalised.

    Texts that share words are close; `calls` and `texts_embedded` count the work.
    """

    def __init__(self, dimension: int = 384) -> None:
        self.dimension = dimension
        self.calls = 0
        self.texts_embedded = 0

    def _vector(self, text: str) -> list[float]:
        vec = [0.0] * self.dimension
        for word in _WORD.findall(text.lower()):
            digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
            bucket = int.from_bytes(digest[:4], "little") % self.dimension
            vec[bucket] += 1.0 if digest[4] & 1 else -1.0
        norm = math.sqrt(sum(v * v for v in vec)) or 1.0
        if norm == 1.0 and not any(vec):
            vec[0] = 1.0
        return [v / norm for v in vec]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        self.texts_embedded += len(texts)
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        self.calls += 1
        return self._vector(text)
