"""Embeddings computed by ONNX Runtime from a model folder made by `retrieval.onnx_export`.

The folder holds one graph that maps token ids to the sentence embedding (transformer,
pooling and normalisation of the sentence-transformers model, traced together), the
model's fast tokenizer and a manifest. Running it needs onnxruntime, tokenizers and
numpy only: no PyTorch import, so a process starts in about a second instead of ~8.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

from db.errors import KbError

__all__ = [
    "MANIFEST_FILE",
    "MODEL_FILE",
    "TOKENIZER_FILE",
    "OnnxEmbeddings",
    "OnnxModelUnreadable",
    "cpu_threads",
]

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
MANIFEST_FILE = "manifest.json"

# Texts per ONNX Runtime call. Texts are sorted by token count first, so a batch holds
# texts of similar length and pads little. Measured on 2 shared cores (int8, ~900-char
# chunks, chunks per CPU-second): 4: 24.8, 8: 23.9, 16: 23.5, 32: 22.7, 64: 19.9; 8 was
# also the fastest by wall clock in `bench/ingest.py --onnx-batch-sizes 8,16,32,64`.
DEFAULT_BATCH_SIZE = 8


class OnnxModelUnreadable(KbError):
    """The exported folder exists but ONNX Runtime or the tokenizer cannot read it."""


def cpu_threads() -> int:
    """The cores this process may run on (ONNX Runtime's intra-op threads)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class _Batch:
    rows: list[int]
    feeds: dict[str, np.ndarray[Any, Any]]


class OnnxEmbeddings(Embeddings):
    """LangChain embeddings over an exported sentence-transformers model; normalised vectors.

    `model_name` names the source model and the backend (the evaluation stamps its index
    with it, so vectors of different backends are never mixed).
    """

    def __init__(
        self,
        folder: Path,
        *,
        model_name: str,
        batch_size: int = DEFAULT_BATCH_SIZE,
        threads: int | None = None,
        spinning: bool = False,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.folder = folder
        self.model_name = model_name
        self.batch_size = max(1, batch_size)
        try:
            manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
            self.dimension = int(manifest["dimension"])
            self.max_seq_length = int(manifest["max_seq_length"])
            self.input_names: list[str] = [str(n) for n in manifest["inputs"]]
            tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
            tokenizer.enable_truncation(max_length=self.max_seq_length)
            tokenizer.no_padding()
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads or cpu_threads()
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            # Idle worker threads spin by default; on a machine shared with PostgreSQL
            # and the parsers that burns the cores they need between two batches.
            if not spinning:
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session = ort.InferenceSession(
                str(folder / MODEL_FILE), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # json, tokenizers and onnxruntime raise many kinds
            raise OnnxModelUnreadable(
                f"The exported ONNX model in {folder} cannot be read: {exc}",
                hint="Delete that folder; the next start exports the model again.",
            ) from exc
        self._tokenizer = tokenizer
        self._session = session

    def encode(self, texts: Sequence[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
        """A (len(texts), dimension) array of unit-length vectors."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        # InferenceSession.run is thread-safe: a chat query is not held up by an ingestion.
        for batch in self._batches(texts):
            (vectors,) = self._session.run(["sentence_embedding"], batch.feeds)
            out[batch.rows] = vectors
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def _batches(self, texts: Sequence[str]) -> list[_Batch]:
        encodings = self._tokenizer.encode_batch(list(texts))
        lengths = [len(e.ids) for e in encodings]
        # Longest first, as sentence-transformers does: each batch pads to its own longest.
        order = sorted(range(len(texts)), key=lambda i: -lengths[i])
        batches = []
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = max(lengths[i] for i in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            types = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                n = lengths[i]
                ids[r, :n] = encodings[i].ids
                mask[r, :n] = 1
                types[r, :n] = encodings[i].type_ids
            arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            batches.append(_Batch(rows, {name: arrays[name] for name in self.input_names}))
        return batches

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]
