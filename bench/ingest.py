"""Ingestion throughput per embedding backend: the model alone vs the whole pipeline.

    python bench/ingest.py                      # a generated corpus (md, txt, html, docx, pdf)
    python bench/ingest.py /work/shared/docs    # a folder of files
    python bench/ingest.py /work/shared/eval/scifact/corpus.jsonl --limit 300   # BEIR corpus
    python bench/ingest.py --backends torch     # only PyTorch (the figures before ONNX)
    python bench/ingest.py --onnx-batch-sizes 8,16,32,64   # also sweep ONNX Runtime's batch

Prints, measured in the same run on the same chunk texts, for each backend (torch,
onnx, onnx-int8):
- raw encode chunks/s: one call over all final chunk texts (`SentenceTransformer.encode`
  for torch, `OnnxEmbeddings.encode` for ONNX), measured before and after the
  pipelines because the CPU is shared; their mean is used,
- full-pipeline chunks/s: parse + split + embed + write, each backend into its own
  fresh database (one embedded PostgreSQL started in a temporary folder, migrated),
- ratios against the raw PyTorch rate (the issue's target: the default backend's
  pipeline >= 1.8x raw PyTorch) and the pipeline / own-raw ratio (target >= 0.85),
- the cosine between each backend's vectors and PyTorch's on these chunks,
- a re-ingest of the unchanged corpus: time and embedding calls (target: 0).

The ONNX exports are cached in the settings' models folder (KB_MODELS_DIR, default
KB_DATA_DIR/models) or --models-dir; a first run exports them (printed).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

# Run as a script, this file's folder is first on sys.path and its name would shadow
# the `ingest` package: drop that folder before importing the project.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from langchain_core.embeddings import Embeddings  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from chat_app.settings import load_settings  # noqa: E402
from db.embedded import start_embedded  # noqa: E402
from db.engine import PoolConfig, make_engine  # noqa: E402
from db.schema import upgrade_to_head  # noqa: E402
from db.spaces import personal_space_id  # noqa: E402
from db.users import add_user  # noqa: E402
from ingest.files import FileResult, IngestOptions, discover_files, ingest_paths  # noqa: E402
from ingest.loaders import load_file  # noqa: E402
from ingest.splitting import split_documents  # noqa: E402
from retrieval.embeddings import BACKENDS, EmbeddingBackend, load_embeddings  # noqa: E402
from retrieval.onnx_embeddings import OnnxEmbeddings  # noqa: E402

T = TypeVar("T")
Vectors = Any  # a (texts, dimension) numpy array

_VOCABULARY = (
    "alpaca llama vicuna guanaco pasture fleece herd andes plateau shearing wool fibre "
    "breeder valley river glacier altitude farmer market textile spinning loom dye yarn "
    "harvest season winter summer feeding water shelter fence veterinary health vaccine "
    "record ledger invoice shipment export cooperative village mountain trail path stone "
    "measure quality grade micron density length colour white brown black grey fawn "
    "temperature rainfall drought grass clover hay barley mineral salt protein energy"
)
WORDS = tuple(_VOCABULARY.split())


class CountingEmbeddings(Embeddings):
    """Delegates to the real model; counts calls and time spent embedding."""

    def __init__(self, inner: Embeddings) -> None:
        self.inner = inner
        self.calls = 0
        self.seconds = 0.0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        start = time.perf_counter()
        try:
            return self.inner.embed_documents(texts)
        finally:
            self.seconds += time.perf_counter() - start

    def embed_query(self, text: str) -> list[float]:
        self.calls += 1
        return self.inner.embed_query(text)


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def server_cpu_seconds(pgdata: Path) -> float:
    """CPU time used so far by the PostgreSQL server in `pgdata` and its live children.

    Linux /proc only; the pipeline's cost includes the server's work (inserts, index
    maintenance), which the Python process's CPU time does not show.
    """
    try:
        postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(stat.parent.name), int(fields[1])
        if postmaster in (pid, ppid):
            ticks += int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 18))]
    return " ".join(words).capitalize() + "."


def _sections(rng: random.Random) -> list[tuple[str, list[str]]]:
    return [
        (
            " ".join(rng.choice(WORDS) for _ in range(3)).title(),
            [
                " ".join(_sentence(rng) for _ in range(rng.randint(3, 7)))
                for _ in range(rng.randint(3, 6))
            ],
        )
        for _ in range(rng.randint(3, 6))
    ]


def generate_corpus(folder: Path, files: int, seed: int = 7) -> None:
    """Deterministic documents in five formats."""
    import docx
    from fpdf import FPDF

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(files):
        sections = _sections(rng)
        kind = ("md", "txt", "html", "docx", "pdf")[n % 5]
        path = folder / f"doc-{n:03d}.{kind}"
        if kind == "md":
            path.write_text("\n\n".join(f"## {h}\n\n" + "\n\n".join(ps) for h, ps in sections))
        elif kind == "txt":
            path.write_text("\n\n".join(f"{h}\n\n" + "\n\n".join(ps) for h, ps in sections))
        elif kind == "html":
            body = "".join(
                f"<h2>{h}</h2>" + "".join(f"<p>{p}</p>" for p in ps) for h, ps in sections
            )
            path.write_text(
                f"<html><head><title>Doc {n}</title><style>p{{}}</style></head>"
                f"<body><nav>menu</nav><main>{body}</main></body></html>"
            )
        elif kind == "docx":
            document = docx.Document()
            for h, ps in sections:
                document.add_heading(h, level=2)
                for p in ps:
                    document.add_paragraph(p)
            document.save(str(path))
        else:
            pdf = FPDF()
            pdf.set_font("Helvetica", size=11)
            for h, ps in sections:
                pdf.add_page()
                pdf.multi_cell(0, 6, h, new_x="LMARGIN", new_y="NEXT")
                for p in ps:
                    pdf.multi_cell(0, 6, p, new_x="LMARGIN", new_y="NEXT")
            pdf.output(str(path))


def beir_to_files(corpus: Path, folder: Path, limit: int) -> None:
    """One text file per BEIR record (title, blank line, text)."""
    folder.mkdir(parents=True, exist_ok=True)
    with corpus.open(encoding="utf-8") as lines:
        for n, line in enumerate(lines):
            if n >= limit:
                break
            record: dict[str, Any] = json.loads(line)
            name = "".join(c if c.isalnum() else "_" for c in str(record["_id"]))
            text = f"{record.get('title') or ''}\n\n{record.get('text') or ''}".strip()
            (folder / f"{name}.txt").write_text(text, encoding="utf-8")


def final_chunk_texts(folder: Path, options: IngestOptions) -> list[str]:
    """The chunk texts the pipeline will embed (loaders + splitter, as ingest_file does)."""
    texts: list[str] = []
    for item in discover_files([folder]).files:
        try:
            documents = load_file(
                item.path, display_name=item.source_id, max_bytes=options.max_bytes
            )
        except Exception:  # the pipeline reports these files as errors and skips them
            continue
        markdown = item.path.suffix.lower() in {".md", ".markdown"}
        chunks = split_documents(
            documents,
            chunk_size=options.chunk_size,
            chunk_overlap=options.chunk_overlap,
            markdown=markdown,
        )
        texts.extend(c.page_content for c in chunks)
    return texts


@dataclass
class BackendRun:
    """One backend's figures in this run."""

    backend: EmbeddingBackend
    embeddings: Embeddings
    encode: Callable[[Sequence[str]], Vectors]
    raw: list[float] = field(default_factory=list)  # chunks/s, before and after
    raw_cpu: list[float] = field(default_factory=list)  # CPU seconds of those runs
    vectors: Vectors = None
    pipeline_rate: float = 0.0
    pipeline_seconds: float = 0.0
    pipeline_cpu: float = 0.0
    pipeline_server_cpu: float = 0.0
    chunks: int = 0
    embed_calls: int = 0
    embed_seconds: float = 0.0
    results: list[FileResult] = field(default_factory=list)

    @property
    def raw_rate(self) -> float:
        return statistics.mean(self.raw)


def make_run(
    backend: EmbeddingBackend, *, batch_size: int, models_dir: Path, onnx_batch: int | None
) -> BackendRun:
    started = time.perf_counter()
    embeddings = load_embeddings(None, batch_size=batch_size, backend=backend, cache_dir=models_dir)
    seconds = time.perf_counter() - started
    if isinstance(embeddings, OnnxEmbeddings):
        if onnx_batch:
            embeddings.batch_size = onnx_batch
        encode: Callable[[Sequence[str]], Vectors] = embeddings.encode
        print(
            f"  {backend}: {embeddings.folder} ({seconds:.1f} s to load or export), "
            f"batches of {embeddings.batch_size} length-sorted texts",
            flush=True,
        )
    else:
        model = embeddings._client  # type: ignore[attr-defined]  # the SentenceTransformer
        encode = lambda texts: model.encode(  # noqa: E731
            list(texts), batch_size=batch_size, normalize_embeddings=True
        )
        print(f"  {backend}: sentence-transformers on PyTorch ({seconds:.1f} s)", flush=True)
    encode(["warm up"] * 8)
    return BackendRun(backend, embeddings, encode)


def measure_raw(run: BackendRun, texts: list[str]) -> float:
    cpu = time.process_time()
    vectors, seconds = timed(lambda: run.encode(texts))
    run.raw_cpu.append(time.process_time() - cpu)
    run.raw.append(len(texts) / seconds)
    run.vectors = vectors
    return run.raw[-1]


def sweep_onnx_batches(runs: list[BackendRun], texts: list[str], sizes: list[int]) -> None:
    """Raw rate of each ONNX backend at each batch size (tuning, not the main figures)."""
    for run in runs:
        if not isinstance(run.embeddings, OnnxEmbeddings):
            continue
        kept = run.embeddings.batch_size
        rates = []
        for size in sizes:
            run.embeddings.batch_size = size
            _, seconds = timed(lambda: run.encode(texts))  # noqa: B023
            rates.append(f"{size}: {len(texts) / seconds:.1f}")
        run.embeddings.batch_size = kept
        print(f"  {run.backend} chunks/s by batch size: {', '.join(rates)}", flush=True)


def cosine_to(reference: Vectors, vectors: Vectors) -> tuple[float, float]:
    """(min, mean) cosine between matching rows of two unit-length arrays."""
    import numpy as np

    cos = (np.asarray(reference) * np.asarray(vectors)).sum(axis=1)
    return float(cos.min()), float(cos.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "corpus",
        nargs="?",
        type=Path,
        help="A folder of files or a BEIR corpus.jsonl (default: generated).",
    )
    parser.add_argument("--limit", type=int, default=300, help="Records of a corpus.jsonl.")
    parser.add_argument("--files", type=int, default=40, help="Generated documents.")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--chunk-overlap", type=int, default=150)
    parser.add_argument(
        "--prefetch",
        type=int,
        default=IngestOptions.prefetch_chunks,
        help="Chunks of several files embedded per model call.",
    )
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help=f"Comma-separated, from {', '.join(BACKENDS)} (torch is always measured).",
    )
    parser.add_argument(
        "--models-dir", type=Path, help="ONNX export cache (default: the settings' models dir)."
    )
    parser.add_argument(
        "--onnx-batch", type=int, help="ONNX Runtime's batch (default: OnnxEmbeddings')."
    )
    parser.add_argument(
        "--onnx-batch-sizes", help="Also sweep ONNX Runtime's batch size, e.g. 8,16,32,64."
    )
    args = parser.parse_args()
    options = IngestOptions(
        chunk_size=args.chunk_size,
        chunk_overlap=args.chunk_overlap,
        batch_size=args.batch_size,
        prefetch_chunks=args.prefetch,
    )
    settings = load_settings()
    default_backend = settings.embedding_backend
    models_dir = args.models_dir or settings.resolved_models_dir
    wanted = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in wanted if b not in BACKENDS]
    if unknown:
        parser.error(f"unknown backend(s) {unknown}; choose from {', '.join(BACKENDS)}")
    backends: list[EmbeddingBackend] = [b for b in BACKENDS if b == "torch" or b in wanted]

    with tempfile.TemporaryDirectory(prefix="kb-bench-ingest-") as tmp_name:
        tmp = Path(tmp_name)
        if args.corpus is None:
            folder = tmp / "corpus"
            generate_corpus(folder, args.files)
            label = f"generated ({args.files} files: md, txt, html, docx, pdf)"
        elif args.corpus.is_file() and args.corpus.suffix == ".jsonl":
            folder = tmp / "corpus"
            beir_to_files(args.corpus, folder, args.limit)
            label = f"{args.corpus} (first {args.limit} records, one .txt file each)"
        else:
            folder = args.corpus
            label = str(folder)
        print(
            f"corpus: {label}; embedding {args.prefetch} chunks per model call, "
            f"batches of {args.batch_size}; {os.cpu_count()} CPUs, load average "
            f"{os.getloadavg()[0]:.1f}",
            flush=True,
        )

        print("loading the embedding backends ...", flush=True)
        runs = [
            make_run(
                b, batch_size=args.batch_size, models_dir=models_dir, onnx_batch=args.onnx_batch
            )
            for b in backends
        ]
        torch_run = runs[0]

        texts, parse_seconds = timed(lambda: final_chunk_texts(folder, options))
        print(
            f"{len(texts)} chunks, mean {statistics.mean(map(len, texts)):.0f} characters; "
            f"parse + split alone: {parse_seconds:.2f} s",
            flush=True,
        )
        if args.onnx_batch_sizes:
            sizes = [int(x) for x in args.onnx_batch_sizes.split(",")]
            sweep_onnx_batches(runs, texts, sizes)

        for run in runs:
            print(f"raw encode {run.backend} (before): {measure_raw(run, texts):.1f} chunks/s")
        cosines = {run.backend: cosine_to(torch_run.vectors, run.vectors) for run in runs}

        server = start_embedded(tmp / "pgdata")
        open_servers = [server]
        default_run = next((r for r in runs if r.backend == default_backend), torch_run)
        try:
            for run in runs:
                db_server = start_embedded(
                    tmp / "pgdata", database="bench_" + run.backend.replace("-", "_")
                )
                open_servers.append(db_server)
                engine = make_engine(db_server.url, PoolConfig(pool_size=2, max_overflow=0))
                try:
                    upgrade_to_head(engine, embedding_dimension=384)
                    with Session(engine) as session:
                        user = add_user(
                            session=session, identifier="bench", password="bench-password"
                        )
                        session.commit()
                        user_id: uuid.UUID = user.id
                        space_id = personal_space_id(session, user_id=user_id)

                    counting = CountingEmbeddings(run.embeddings)

                    def ingest(
                        engine: Any = engine,
                        counting: Any = counting,
                        user_id: Any = user_id,
                        space_id: Any = space_id,
                    ) -> list[FileResult]:
                        return ingest_paths(
                            [folder],
                            engine=engine,
                            embeddings=counting,
                            user_id=user_id,
                            space_id=space_id,
                            options=options,
                        )

                    cpu, server_cpu = time.process_time(), server_cpu_seconds(server.pgdata)
                    run.results, run.pipeline_seconds = timed(ingest)
                    run.pipeline_cpu = time.process_time() - cpu
                    run.pipeline_server_cpu = server_cpu_seconds(server.pgdata) - server_cpu
                    run.chunks = sum(r.chunks for r in run.results if r.status != "error")
                    run.pipeline_rate = run.chunks / run.pipeline_seconds
                    run.embed_calls, run.embed_seconds = counting.calls, counting.seconds
                    print(
                        f"pipeline {run.backend}: {run.chunks} chunks in "
                        f"{run.pipeline_seconds:.2f} s",
                        flush=True,
                    )
                    if run is default_run:
                        counting.calls, counting.seconds = 0, 0.0
                        again, reingest_seconds = timed(ingest)
                        reingest_calls = counting.calls
                        unchanged = sum(r.status == "unchanged" for r in again)
                finally:
                    engine.dispose()
        finally:
            for s in reversed(open_servers):
                s.stop()

        for run in runs:
            print(f"raw encode {run.backend} (after): {measure_raw(run, texts):.1f} chunks/s")

    raw_torch = torch_run.raw_rate
    failed = [r for r in torch_run.results if r.status == "error"]
    print()
    print(f"files: {len(torch_run.results)} ({len(failed)} failed)")
    for r in failed:
        print(f"  error: {r.error}")
    for run in runs:
        if run.chunks != len(texts):
            print(
                f"WARNING: the {run.backend} pipeline indexed {run.chunks} chunks, "
                f"the raw pass encoded {len(texts)}"
            )
    print(
        f"\n{'backend':10} {'raw chunks/s':>13} {'x raw torch':>11} {'pipeline':>9} "
        f"{'x raw torch':>11} {'/ own raw':>9}  cosine to torch (min / mean)"
    )
    for run in runs:
        low, mean = cosines[run.backend]
        print(
            f"{run.backend:10} {run.raw_rate:13.1f} {run.raw_rate / raw_torch:11.2f} "
            f"{run.pipeline_rate:9.1f} {run.pipeline_rate / raw_torch:11.2f} "
            f"{run.pipeline_rate / run.raw_rate:9.2f}  {low:.4f} / {mean:.4f}"
        )
    print(
        "  (raw = mean of the runs before and after the pipelines: "
        + "; ".join(f"{r.backend} {r.raw[0]:.1f} / {r.raw[1]:.1f}" for r in runs)
        + ")"
    )
    print(
        f"default backend {default_run.backend}: pipeline / raw PyTorch = "
        f"{default_run.pipeline_rate / raw_torch:.2f} (target >= 1.8; "
        f"{default_run.pipeline_rate / torch_run.raw[0]:.2f} vs the raw torch run before, "
        f"{default_run.pipeline_rate / torch_run.raw[1]:.2f} vs the one after)"
    )
    torch_cpu_rate = len(torch_run.raw) * len(texts) / sum(torch_run.raw_cpu)
    default_cpu_rate = default_run.chunks / (
        default_run.pipeline_cpu + default_run.pipeline_server_cpu
    )
    print(
        f"  by CPU time: {default_cpu_rate:.1f} pipeline chunks/CPU-s / {torch_cpu_rate:.1f} "
        f"raw PyTorch chunks/CPU-s = {default_cpu_rate / torch_cpu_rate:.2f}"
    )
    print()
    for run in runs:
        raw_cpu_rate = len(run.raw) * len(texts) / sum(run.raw_cpu)
        pipeline_cpu_rate = run.chunks / (run.pipeline_cpu + run.pipeline_server_cpu)
        print(
            f"{run.backend}: pipeline {run.pipeline_rate:.1f} chunks/s ({run.pipeline_seconds:.2f}"
            f" s; embedding {run.embed_seconds:.2f} s in {run.embed_calls} calls, parse + "
            f"split + write {run.pipeline_seconds - run.embed_seconds:.2f} s = "
            f"{1 - run.embed_seconds / run.pipeline_seconds:.1%} of it); pipeline / raw "
            f"{run.pipeline_rate / run.raw_rate:.2f} (target >= 0.85)"
        )
        print(
            f"  by CPU time (steadier when the machine is shared): raw {raw_cpu_rate:.1f} "
            f"chunks/CPU-s, pipeline {pipeline_cpu_rate:.1f} chunks/CPU-s (Python "
            f"{run.pipeline_cpu:.1f} s + PostgreSQL {run.pipeline_server_cpu:.1f} s), "
            f"ratio {pipeline_cpu_rate / raw_cpu_rate:.2f}"
        )
    print(
        f"re-ingest unchanged ({default_run.backend}): {reingest_seconds:.2f} s, "
        f"{reingest_calls} embedding calls (target 0), {unchanged}/{len(again)} files unchanged"
    )


if __name__ == "__main__":
    main()
