"""Ingestion throughput: the model alone vs the whole pipeline, and a re-ingest.

    python bench/ingest.py                      # a generated corpus (md, txt, html, docx, pdf)
    python bench/ingest.py /work/shared/docs    # a folder of files
    python bench/ingest.py /work/shared/eval/scifact/corpus.jsonl --limit 300   # BEIR corpus

Prints, measured in the same run on the same chunk texts:
- raw `SentenceTransformer.encode` chunks/s (one call over all final chunk texts,
  measured before and after the pipeline because the CPU is shared; their mean is used),
- full-pipeline chunks/s: parse + split + embed + write into a fresh database
  (an embedded PostgreSQL started in a temporary folder, migrated to head),
- their ratio (target >= 0.85: parsing and the database add under 15%),
- a re-ingest of the unchanged corpus: time and embedding calls (target: 0).
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
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

# Run as a script, this file's folder is first on sys.path and its name would shadow
# the `ingest` package: drop that folder before importing the project.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from langchain_core.embeddings import Embeddings  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from db.embedded import start_embedded  # noqa: E402
from db.engine import PoolConfig, make_engine  # noqa: E402
from db.schema import upgrade_to_head  # noqa: E402
from db.users import add_user  # noqa: E402
from ingest.files import FileResult, IngestOptions, discover_files, ingest_paths  # noqa: E402
from ingest.loaders import load_file  # noqa: E402
from ingest.splitting import split_documents  # noqa: E402
from retrieval.embeddings import load_embeddings  # noqa: E402

T = TypeVar("T")

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
    args = parser.parse_args()
    options = IngestOptions(
        chunk_size=args.chunk_size,
        chunk_overlap=args.chunk_overlap,
        batch_size=args.batch_size,
        prefetch_chunks=args.prefetch,
    )

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
            f"batches of {args.batch_size}"
        )

        print("loading the embedding model ...", flush=True)
        embeddings = load_embeddings(None, batch_size=args.batch_size)
        model = embeddings._client  # type: ignore[attr-defined]  # the SentenceTransformer
        model.encode(["warm up"] * 8, batch_size=args.batch_size, normalize_embeddings=True)

        texts, parse_seconds = timed(lambda: final_chunk_texts(folder, options))
        print(
            f"{len(texts)} chunks, mean {statistics.mean(map(len, texts)):.0f} characters; "
            f"parse + split alone: {parse_seconds:.2f} s",
            flush=True,
        )

        raw_cpu: list[float] = []

        def raw() -> float:
            cpu = time.process_time()
            _, seconds = timed(
                lambda: model.encode(texts, batch_size=args.batch_size, normalize_embeddings=True)
            )
            raw_cpu.append(time.process_time() - cpu)
            return len(texts) / seconds

        raw_before = raw()
        print(f"raw encode (before): {raw_before:.1f} chunks/s", flush=True)

        server = start_embedded(tmp / "pgdata")
        engine = make_engine(server.url, PoolConfig(pool_size=2, max_overflow=0))
        try:
            upgrade_to_head(engine, embedding_dimension=384)
            with Session(engine) as session:
                user = add_user(session=session, identifier="bench", password="bench-password")
                session.commit()
                user_id: uuid.UUID = user.id

            counting = CountingEmbeddings(embeddings)

            def run() -> list[FileResult]:
                return ingest_paths(
                    [folder], engine=engine, embeddings=counting, user_id=user_id, options=options
                )

            cpu, server_cpu = time.process_time(), server_cpu_seconds(server.pgdata)
            results, pipeline_seconds = timed(run)
            pipeline_cpu = time.process_time() - cpu
            pipeline_server_cpu = server_cpu_seconds(server.pgdata) - server_cpu
            chunks = sum(r.chunks for r in results if r.status != "error")
            failed = [r for r in results if r.status == "error"]
            pipeline_rate = chunks / pipeline_seconds
            embed_calls, embed_seconds = counting.calls, counting.seconds
            print(f"pipeline: {chunks} chunks in {pipeline_seconds:.2f} s", flush=True)

            raw_after = raw()
            print(f"raw encode (after): {raw_after:.1f} chunks/s", flush=True)

            counting.calls, counting.seconds = 0, 0.0
            again, reingest_seconds = timed(run)
            unchanged = sum(r.status == "unchanged" for r in again)
        finally:
            engine.dispose()
            server.stop()

    raw_rate = (raw_before + raw_after) / 2
    print()
    print(f"files: {len(results)} ({len(failed)} failed)")
    for r in failed:
        print(f"  error: {r.error}")
    if chunks != len(texts):
        print(f"WARNING: the pipeline indexed {chunks} chunks, the raw pass encoded {len(texts)}")
    print(
        f"raw SentenceTransformer.encode: {raw_rate:8.1f} chunks/s "
        f"(before {raw_before:.1f}, after {raw_after:.1f})"
    )
    print(
        f"full pipeline:                  {pipeline_rate:8.1f} chunks/s "
        f"({pipeline_seconds:.2f} s; embedding {embed_seconds:.2f} s in {embed_calls} calls, "
        f"parse + split + write {pipeline_seconds - embed_seconds:.2f} s)"
    )
    print(
        f"ratio pipeline / raw:           {pipeline_rate / raw_rate:8.2f}  (target >= 0.85; "
        f"{pipeline_rate / raw_before:.2f} vs the raw run before, "
        f"{pipeline_rate / raw_after:.2f} vs the one after)"
    )
    raw_cpu_rate = 2 * len(texts) / sum(raw_cpu)
    pipeline_cpu_rate = chunks / (pipeline_cpu + pipeline_server_cpu)
    print(
        f"by CPU time (steadier when the machine is shared): raw {raw_cpu_rate:.1f} chunks/"
        f"CPU-s, pipeline {pipeline_cpu_rate:.1f} chunks/CPU-s (Python {pipeline_cpu:.1f} s "
        f"+ PostgreSQL {pipeline_server_cpu:.1f} s), "
        f"ratio {pipeline_cpu_rate / raw_cpu_rate:.2f}"
    )
    print(
        f"time outside the model:         {1 - embed_seconds / pipeline_seconds:8.1%} of the "
        "pipeline (parsing, splitting, hashing, SQL)"
    )
    print(
        f"re-ingest unchanged:            {reingest_seconds:8.2f} s, "
        f"{counting.calls} embedding calls (target 0), {unchanged}/{len(again)} files unchanged"
    )


if __name__ == "__main__":
    main()
