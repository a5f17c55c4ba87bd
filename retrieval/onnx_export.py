"""Export a sentence-transformers model to ONNX (fp32 or int8), once, into a cache folder.

The export runs locally from the model's own weights (nothing is downloaded): PyTorch
traces the whole sentence-transformers pipeline (transformer, pooling, normalisation)
into one graph, ONNX Runtime's transformer optimiser fuses attention, GELU and layer
norms, and for `onnx-int8` its dynamic quantiser stores the weights as int8 (per
channel). Before the folder is accepted, its vectors are compared with PyTorch's on
probe texts.

sentence-transformers' own `backend="onnx"` would do the export through optimum-onnx,
but the only optimum-onnx release (0.1.0) needs transformers < 4.58 while
sentence-transformers 6 needs transformers >= 5, so they cannot be installed together.

Concurrency: the folder is built under a temporary name and renamed into place while
holding a file lock, so two processes starting at once export once, and a crash never
leaves a half-written folder under the final name.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from db.errors import KbError
from retrieval.onnx_embeddings import MANIFEST_FILE, MODEL_FILE, TOKENIZER_FILE, OnnxEmbeddings

__all__ = [
    "ONNX_BACKENDS",
    "ExportManifest",
    "OnnxBackendError",
    "OnnxBackendName",
    "OnnxModel",
    "cache_folder",
    "ensure_onnx_model",
    "missing_packages",
    "read_manifest",
]

log = logging.getLogger(__name__)

OnnxBackendName = Literal["onnx", "onnx-int8"]
ONNX_BACKENDS: tuple[OnnxBackendName, ...] = ("onnx", "onnx-int8")
FORMAT = 1
# Smallest cosine between PyTorch's vector and the export's on any probe text. fp32
# matches to ~1e-6; int8 measured 0.99+ on SciFact passages with per-channel weights.
MIN_COSINE: dict[str, float] = {"onnx": 0.99, "onnx-int8": 0.95}
PACKAGES = ("onnxruntime", "onnx", "tokenizers")

_PROBES = (
    "kb",
    "What is the refund policy for items bought online?",
    "Alpacas are kept for their fleece, which is spun into a soft, warm yarn.",
    # Longer than the model's 256 tokens: the export must truncate as PyTorch does.
    " ".join(["The committee reviewed the quarterly figures and the audit findings."] * 40),
)


class OnnxBackendError(KbError):
    """The ONNX backend cannot be set up: a package is missing or the export failed."""


@dataclass(frozen=True)
class ExportManifest:
    """What a cache folder holds and where it came from (its `manifest.json`)."""

    backend: str
    source: str
    source_fingerprint: str
    dimension: int
    max_seq_length: int
    inputs: list[str]
    min_probe_cosine: float
    seconds: float
    export_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    format: int = FORMAT
    versions: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class OnnxModel:
    """A usable export: its folder, its manifest, and whether this call made it."""

    folder: Path
    manifest: ExportManifest
    exported: bool


def missing_packages() -> list[str]:
    """The packages the ONNX backends need that cannot be imported."""
    missing = []
    for name in PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def cache_folder(cache_dir: Path, name: str, backend: OnnxBackendName) -> Path:
    """`<cache_dir>/<name>-<backend>`, with the name made safe for a folder."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "model"
    return cache_dir / f"{safe}-{backend}"


def source_fingerprint(model: str) -> str:
    """Identifies the source weights: a folder's files (path, size, mtime), or a name."""
    path = Path(model)
    if not path.is_dir():
        return "name:" + model
    digest = hashlib.sha256(str(path.resolve()).encode())
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        stat = file.stat()
        digest.update(f"{file.relative_to(path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def read_manifest(folder: Path) -> ExportManifest | None:
    """The folder's manifest, or None when it is missing, unreadable or of another format."""
    try:
        data = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
        manifest = ExportManifest(**data)
    except (OSError, ValueError, TypeError):
        return None
    if manifest.format != FORMAT:
        return None
    return manifest


def _usable(folder: Path, backend: str, fingerprint: str) -> ExportManifest | None:
    manifest = read_manifest(folder)
    if (
        manifest is None
        or manifest.backend != backend
        or manifest.source_fingerprint != fingerprint
        or not (folder / MODEL_FILE).is_file()
        or not (folder / TOKENIZER_FILE).is_file()
    ):
        return None
    return manifest


def ensure_onnx_model(
    model: str,
    *,
    backend: OnnxBackendName,
    cache_dir: Path,
    name: str,
    discard_export: str | None = None,
) -> OnnxModel:
    """The cached export of `model` for `backend`, exporting it first when needed.

    A folder that is incomplete, unreadable or made from other weights is replaced.
    `discard_export` names an export id found broken by its reader (for instance a
    truncated model file): that export is replaced too, unless another process already
    replaced it.
    """
    if backend not in ONNX_BACKENDS:
        raise ValueError(f"not an ONNX backend: {backend!r}")
    missing = missing_packages()
    if missing:
        raise OnnxBackendError(
            f"The {backend} embedding backend needs {', '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed.",
            hint="Reinstall kb (`pip install -e .` installs onnxruntime and onnx), "
            "or set KB_EMBEDDING_BACKEND=torch.",
        )
    fingerprint = source_fingerprint(model)
    target = cache_folder(cache_dir, name, backend)
    found = _usable(target, backend, fingerprint)
    if found is not None and found.export_id != discard_export:
        return OnnxModel(target, found, exported=False)
    lock_path = cache_dir / f".{target.name}.lock"
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        lock_path.touch(exist_ok=True)
    except OSError as exc:
        raise OnnxBackendError(
            f"Cannot write the ONNX model cache {cache_dir}: {exc}",
            hint="Make KB_DATA_DIR (or KB_MODELS_DIR) writable, or set KB_EMBEDDING_BACKEND=torch.",
        ) from exc
    with _locked(lock_path):
        # Another process may have finished the export while this one waited.
        found = _usable(target, backend, fingerprint)
        if found is not None and found.export_id != discard_export:
            return OnnxModel(target, found, exported=False)
        for leftover in cache_dir.glob(f".tmp-{target.name}+*"):
            shutil.rmtree(leftover, ignore_errors=True)  # a crashed export's
        if target.exists():
            log.warning("replacing the unusable ONNX model cache %s", target)
            _discard(target)
        manifest = _export_into_place(model, backend, target, fingerprint)
    return OnnxModel(target, manifest, exported=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released by the kernel if the process dies
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _discard(folder: Path) -> None:
    # Rename first (atomic), so nobody sees a half-deleted folder under the real name.
    trash = folder.with_name(f".tmp-{folder.name}+discarded-{uuid.uuid4().hex[:8]}")
    folder.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)


def _export_into_place(
    model: str, backend: OnnxBackendName, target: Path, fingerprint: str
) -> ExportManifest:
    # "+" never occurs in a cache folder's name: "<name>-onnx+" cannot match "-onnx-int8".
    work = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}+", dir=target.parent))
    work.chmod(0o755)  # mkdtemp's 0700 would hide the cache from a second service account
    try:
        manifest = export_model(model, backend, work, fingerprint)
        work.rename(target)
    except OnnxBackendError:
        shutil.rmtree(work, ignore_errors=True)
        raise
    except Exception as exc:
        shutil.rmtree(work, ignore_errors=True)
        log.exception("ONNX export of %s failed", model)
        raise OnnxBackendError(
            f"Exporting the embedding model {model!r} to ONNX ({backend}) failed: {exc}",
            hint="Set KB_EMBEDDING_BACKEND=torch to use PyTorch directly, and report the "
            "error with the output of `kb doctor`.",
        ) from exc
    return manifest


def export_model(
    model: str, backend: OnnxBackendName, folder: Path, fingerprint: str
) -> ExportManifest:
    """Export into `folder` (which must exist) and check it against PyTorch."""
    started = time.perf_counter()
    st = _load_for_export(model)
    transformer = st[0]
    produced = _features(st, ["x"])
    names: list[str] = [
        n for n in ("input_ids", "attention_mask", "token_type_ids") if n in produced
    ]
    fp32 = folder / "model-fp32.onnx"
    _trace(st, names, fp32)
    notes: list[str] = []
    fused = folder / "model-fused.onnx"
    config = getattr(getattr(transformer, "auto_model", None), "config", None)
    try:
        _fuse(fp32, fused, config)
    except Exception as exc:  # the fusions are an optimisation: fall back to the plain graph
        log.warning("ONNX Runtime's transformer optimiser failed (%s); using the plain export", exc)
        notes.append(f"not fused: {exc}")
        shutil.copyfile(fp32, fused)
    if backend == "onnx-int8":
        reduce_range = _needs_reduce_range()
        _quantize(fused, folder / MODEL_FILE, reduce_range=reduce_range)
        notes.append(f"int8 per-channel weights, reduce_range={reduce_range}")
        fused.unlink()
    else:
        fused.rename(folder / MODEL_FILE)
    fp32.unlink()
    st.tokenizer.backend_tokenizer.save(str(folder / TOKENIZER_FILE))

    dimension = int(
        getattr(st, "get_embedding_dimension", st.get_sentence_embedding_dimension)() or 0
    )
    max_seq_length = int(st.max_seq_length or 512)
    draft = ExportManifest(
        backend=backend,
        source=model,
        source_fingerprint=fingerprint,
        dimension=dimension,
        max_seq_length=max_seq_length,
        inputs=names,
        min_probe_cosine=0.0,
        seconds=0.0,
        versions={
            p: _version(p)
            for p in ("torch", "sentence-transformers", "transformers", "onnxruntime", "onnx")
        },
        notes=notes,
    )
    _write_manifest(folder, draft)
    cosine = _probe_cosine(st, folder)
    if cosine < MIN_COSINE[backend]:
        raise OnnxBackendError(
            f"The {backend} export of {model!r} gives vectors that differ from PyTorch's "
            f"(cosine {cosine:.4f} < {MIN_COSINE[backend]}).",
            hint="Set KB_EMBEDDING_BACKEND=torch (or onnx for the unquantised export).",
        )
    manifest = ExportManifest(
        **{
            **asdict(draft),
            "min_probe_cosine": round(cosine, 6),
            "seconds": round(time.perf_counter() - started, 1),
        }
    )
    _write_manifest(folder, manifest)
    return manifest


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "missing"


def _write_manifest(folder: Path, manifest: ExportManifest) -> None:
    (folder / MANIFEST_FILE).write_text(json.dumps(asdict(manifest), indent=2), encoding="utf-8")


def _load_for_export(model: str) -> Any:
    from sentence_transformers import SentenceTransformer

    if Path(model).exists():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder: never ask the hub
    try:
        # Eager attention traces to the MatMul/Softmax pattern ONNX Runtime fuses into
        # one Attention node; PyTorch's SDPA kernel traces to a graph it cannot fuse.
        return SentenceTransformer(
            model, device="cpu", model_kwargs={"attn_implementation": "eager"}
        )
    except (TypeError, ValueError):  # a model without that option
        return SentenceTransformer(model, device="cpu")


def _features(st: Any, texts: list[str]) -> dict[str, Any]:
    # sentence-transformers 6 renamed `tokenize` to `preprocess`.
    prepare = getattr(st, "preprocess", None) or st.tokenize
    return dict(prepare(texts))


def _trace(st: Any, names: list[str], path: Path) -> None:
    import torch

    class Pipeline(torch.nn.Module):
        """The sentence-transformers modules as one function of the token tensors."""

        def __init__(self) -> None:
            super().__init__()
            self.st = st

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.st(dict(zip(names, tensors, strict=True)))["sentence_embedding"]

    # Two texts of different lengths: the traced graph must contain the padding mask.
    features = _features(st, ["kb", "a longer sentence, so that the batch needs padding"])
    args = tuple(features[n] for n in names)
    axes = {n: {0: "batch", 1: "tokens"} for n in names}
    st.eval()
    with warnings.catch_warnings(), torch.no_grad():
        # The tracer warns about shape checks it records as constants; for an encoder
        # they compare equal lengths and are constant indeed (the probes check this).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Pipeline().eval(),
            args,
            str(path),
            input_names=names,
            output_names=["sentence_embedding"],
            dynamic_axes={**axes, "sentence_embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,  # the TorchScript exporter: seconds, not minutes, and one file
        )


def _fuse(source: Path, target: Path, config: Any) -> None:
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(
        str(source),
        model_type="bert",
        num_heads=int(getattr(config, "num_attention_heads", 0) or 0),
        hidden_size=int(getattr(config, "hidden_size", 0) or 0),
        opt_level=1,
    )
    optimized.save_model_to_file(str(target))


def _needs_reduce_range() -> bool:
    """ONNX Runtime advises 7-bit weights on x86 CPUs without VNNI (int8 saturation)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    if "avx2" not in flags:  # not x86 (or very old): the 8-bit kernels do not saturate
        return False
    return "vnni" not in flags


def _quantize(source: Path, target: Path, *, reduce_range: bool) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    previous, root.disabled = root.disabled, True
    try:  # it logs an unconditional "consider pre-processing" warning to the root logger
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            # Per-tensor int8 weights lose too much here (cosine ~0.93 on SciFact);
            # per channel keeps 0.99+.
            per_channel=True,
            reduce_range=reduce_range,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        root.disabled = previous


def _probe_cosine(st: Any, folder: Path) -> float:
    """The smallest cosine between PyTorch's vectors and the export's on the probes."""
    import numpy as np

    reference = np.asarray(
        st.encode(list(_PROBES), normalize_embeddings=True, show_progress_bar=False)
    )
    exported = OnnxEmbeddings(folder, model_name="probe").encode(list(_PROBES))
    return float((reference * exported).sum(axis=1).min())
