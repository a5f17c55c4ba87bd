"""The embedding backend switch: torch, onnx and onnx-int8 give the same kind of vectors.

The ONNX exports are made from the bundled weights into the session's export cache
(the `onnx_models_dir` fixture), once per session; the tests that need a fresh cache
copy the session's export instead of exporting again where they can.
"""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path
from typing import get_args

import pytest
from pydantic import ValidationError

from chat_app.settings import EmbeddingBackend, Settings
from retrieval.embeddings import BACKENDS, OnnxBackendError, load_embeddings
from retrieval.onnx_embeddings import MODEL_FILE
from retrieval.onnx_export import (
    ONNX_BACKENDS,
    OnnxBackendName,
    cache_folder,
    ensure_onnx_model,
    read_manifest,
)
from tests.cli import run_kb

TEXTS = [
    "Customers may return any item within 30 days for a full refund.",
    "The cafeteria serves lunch from noon until two.",
    "Alpaca fleece is spun into a soft, warm yarn.",
]
QUERY = "How do I get my money back?"
BUNDLED = "all-MiniLM-L6-v2"


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def _bundled_model() -> str:
    from retrieval.embeddings import resolve_model

    return resolve_model(None)


def test_settings_and_retrieval_name_the_same_backends() -> None:
    assert get_args(EmbeddingBackend) == BACKENDS == ("torch", *ONNX_BACKENDS)


def test_settings_refuse_an_unknown_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KB_EMBEDDING_BACKEND", "tensorflow")
    with pytest.raises(ValidationError, match="embedding_backend"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_settings_read_the_backend_and_cache_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KB_EMBEDDING_BACKEND", "onnx")
    monkeypatch.delenv("KB_MODELS_DIR")
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")  # type: ignore[call-arg]
    assert settings.embedding_backend == "onnx"
    assert settings.resolved_models_dir == (tmp_path / "data" / "models").resolve()
    monkeypatch.setenv("KB_MODELS_DIR", "")  # as left by uncommenting .env.example's line
    unset = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    assert unset.resolved_models_dir == (tmp_path / "models").resolve()
    monkeypatch.setenv("KB_MODELS_DIR", str(tmp_path / "shared-models"))
    shared = Settings(_env_file=None).resolved_models_dir  # type: ignore[call-arg]
    assert shared == (tmp_path / "shared-models").resolve()


def test_an_unwritable_cache_folder_is_reported_with_what_to_do(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(OnnxBackendError, match="Cannot write the ONNX model cache") as info:
        load_embeddings(None, backend="onnx", cache_dir=blocker / "models")
    assert "KB_EMBEDDING_BACKEND=torch" in str(info.value)


def test_a_missing_onnxruntime_is_reported_with_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` fails
    with pytest.raises(OnnxBackendError, match="needs onnxruntime") as info:
        load_embeddings(None, backend="onnx-int8", cache_dir=tmp_path)
    assert "pip install" in str(info.value) and "KB_EMBEDDING_BACKEND=torch" in str(info.value)
    assert not any(tmp_path.iterdir())  # nothing half-made


@pytest.mark.model
@pytest.mark.parametrize("backend", BACKENDS)
def test_each_backend_embeds_like_pytorch(backend: EmbeddingBackend, onnx_models_dir: Path) -> None:
    reference = load_embeddings(None, backend="torch")
    embeddings = load_embeddings(None, backend=backend, cache_dir=onnx_models_dir)
    vectors = embeddings.embed_documents(TEXTS)
    query = embeddings.embed_query(QUERY)
    assert [len(v) for v in vectors] == [384] * len(TEXTS) and len(query) == 384
    assert all(math.isclose(_cosine(v, v), 1.0, abs_tol=1e-5) for v in vectors)
    floor = 0.95 if backend == "onnx-int8" else 0.999
    for vector, expected in zip(vectors, reference.embed_documents(TEXTS), strict=True):
        assert _cosine(vector, expected) >= floor
    scores = [_cosine(query, v) for v in vectors]
    assert scores.index(max(scores)) == 0  # the refund passage answers the refund question


@pytest.mark.model
@pytest.mark.parametrize("backend", ONNX_BACKENDS)
def test_the_export_is_made_once_and_reused(
    backend: OnnxBackendName, onnx_models_dir: Path
) -> None:
    model = _bundled_model()
    first = ensure_onnx_model(model, backend=backend, cache_dir=onnx_models_dir, name=BUNDLED)
    made = (first.folder / MODEL_FILE).stat().st_mtime_ns
    again = ensure_onnx_model(model, backend=backend, cache_dir=onnx_models_dir, name=BUNDLED)
    assert again.exported is False
    assert again.manifest.export_id == first.manifest.export_id
    assert (again.folder / MODEL_FILE).stat().st_mtime_ns == made
    assert again.folder == cache_folder(onnx_models_dir, BUNDLED, backend)
    assert again.manifest.dimension == 384 and again.manifest.max_seq_length == 256
    assert again.manifest.min_probe_cosine >= (0.95 if backend == "onnx-int8" else 0.99)
    # No temporary folder is left behind.
    assert [p.name for p in onnx_models_dir.iterdir() if p.name.startswith(".tmp-")] == []


@pytest.mark.model
def test_a_damaged_export_is_made_again(onnx_models_dir: Path, tmp_path: Path) -> None:
    model = _bundled_model()
    session = ensure_onnx_model(model, backend="onnx", cache_dir=onnx_models_dir, name=BUNDLED)
    cache = tmp_path / "models"
    damaged = cache_folder(cache, BUNDLED, "onnx")
    shutil.copytree(session.folder, damaged)
    (damaged / MODEL_FILE).write_bytes(b"truncated")  # manifest still says all is well
    embeddings = load_embeddings(None, backend="onnx", cache_dir=cache)
    assert len(embeddings.embed_query(QUERY)) == 384
    rebuilt = read_manifest(damaged)
    assert rebuilt is not None and rebuilt.export_id != session.manifest.export_id
    assert (damaged / MODEL_FILE).stat().st_size > 1_000_000


def test_doctor_names_the_backend_in_use(db_url: str, tmp_path: Path) -> None:
    result = run_kb(
        "doctor", cwd=tmp_path, database_url=db_url, KB_EMBEDDING_BACKEND="onnx", COLUMNS="200"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (line,) = [row for row in result.stdout.splitlines() if "embedding backend" in row]
    assert "onnx (ONNX Runtime" in line and "ok" in line


@pytest.mark.model
def test_setup_prepares_the_onnx_backend_before_the_first_upload(
    db_url: str, tmp_path: Path, onnx_models_dir: Path
) -> None:
    result = run_kb("setup", cwd=tmp_path, database_url=db_url, KB_EMBEDDING_BACKEND="onnx-int8")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Embedding backend onnx-int8 ready." in result.stdout
    assert read_manifest(cache_folder(onnx_models_dir, BUNDLED, "onnx-int8")) is not None
