"""Background jobs (issue 12): folder indexing throughput, and chat responsiveness.

    python bench/jobs.py [--part all|folder|chat] [--files 10] [--file-sections 170]
                         [--sections 1000] [--questions 100]

A fresh embedded PostgreSQL in a temporary folder (KB_DATA_DIR) and two people: `bench`
asks the questions (a small document about a reactor), `loader` owns the space the
large documents are indexed into, so every question series searches the same small
knowledge base and only the load on the machine differs between them.

1. folder (`--part folder`): `--files` generated Markdown files of `--file-sections`
   chunks each (about 1,700 chunks by default), queued one job per file as `kb ingest`
   does, indexed by 1 and then by 2 `kb worker` processes (a copy under another folder
   name each time, so nothing is skipped as unchanged); against the raw embedding rate:
   `embed_documents` on the same chunk texts, in batches of the same size, in a separate
   process niced like the workers, same backend, same run. Prints chunks/s and the
   ratios pipeline/raw (1 and 2 workers) and 2 workers/1 worker.
2. chat (`--part chat`): p50/p95 of answering questions (retrieval + extractive answer,
   no LLM: what the web process does for a question)
   - idle;
   - before: while a `--sections`-chunk document is indexed IN this process (`ingest_file`
     in a thread, as the old app embedded uploads inside the web process);
   - after: while one `kb worker` process (niced as `kb serve` starts them) indexes the
     same document;
   - idle again at the end (drift of the machine);
   and the ratios busy/idle for before and after (the issue's target: p95 after <= 2x
   idle on 2 cores). Both busy series are asked from the moment embedding starts until
   the document is indexed.

The CPU is shared with whatever else runs: the ratios, measured in one run, are the
figures.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

# Run as a script, this file's folder is first on sys.path and bench/retrieval.py would
# shadow the `retrieval` package: drop that folder before importing the project.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from sqlalchemy.orm import Session  # noqa: E402

from chat_app.cli.serve_cmd import ensure_schema  # noqa: E402
from chat_app.jobs.queue import JobQueue  # noqa: E402
from chat_app.jobs.runner import lower_priority, work_until_idle  # noqa: E402
from chat_app.services import Services, open_services  # noqa: E402
from chat_app.settings import load_settings  # noqa: E402
from db import jobs as repo  # noqa: E402
from db.scoped import user_scope  # noqa: E402
from db.spaces import readable_spaces  # noqa: E402
from db.users import add_user  # noqa: E402
from ingest.files import FileResult, IngestOptions, ingest_file  # noqa: E402
from ingest.loaders import load_file  # noqa: E402
from ingest.splitting import split_documents  # noqa: E402
from retrieval.chain import Answer  # noqa: E402

FACT = "The Zorblatt reactor operates at exactly 4217 kelvin during the night shift."
QUESTIONS = [
    "At what temperature does the Zorblatt reactor operate?",
    "How hot is the reactor at night?",
    "What cools the Zorblatt reactor?",
    "When is maintenance done on the reactor?",
]


def big_markdown(sections: int, label: str = "the quarry") -> bytes:
    """About one ~900-character chunk per section (as the browser test's handbook);
    `label` makes the text of each generated file its own."""
    filler = " ".join(f"procedure{i % 41} clause{i % 17} item{i}" for i in range(30))
    return "\n\n".join(
        f"## Section {n}: rules of {label}\n\nSection {n} of {label} says: {filler} (end of {n})."
        for n in range(sections)
    ).encode()


def small_markdown() -> bytes:
    return (
        "# Zorblatt reactor\n\n"
        f"{FACT} The reactor is cooled by liquid xenon pumped from the northern tank.\n\n"
        "## Maintenance\n\nMaintenance happens every second Tuesday; the crew wears blue suits.\n"
    ).encode()


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def chunk_texts(paths: Sequence[Path], options: IngestOptions) -> list[list[str]]:
    """Each file's chunk texts, split as `ingest_file` splits them (Markdown files)."""
    texts = []
    for path in paths:
        documents = load_file(path, max_bytes=options.max_bytes, options=options.load)
        chunks = split_documents(
            documents,
            chunk_size=options.chunk_size,
            chunk_overlap=options.chunk_overlap,
            markdown=True,
        )
        texts.append([c.page_content for c in chunks])
    return texts


def raw_rate_process(folder: Path) -> None:
    """`--raw-rate FOLDER` (run by the bench as a child): embed the folder's chunk texts
    as a worker would (niced, model loaded first, one `embed_documents` call per batch
    of `embedding_batch_size`), print {"chunks": n, "seconds": s} as one JSON line."""
    services = open_services(load_settings(), require_schema=False)
    try:
        lower_priority(services)
        embeddings = services.embeddings
        options = services.ingest_options()
        files = chunk_texts(sorted(folder.glob("*.md")), options)
        embeddings.embed_documents(files[0][: options.batch_size])  # warm up
        start = time.perf_counter()
        for texts in files:
            for i in range(0, len(texts), options.batch_size):
                embeddings.embed_documents(texts[i : i + options.batch_size])
        seconds = time.perf_counter() - start
    finally:
        services.close()
    print(json.dumps({"chunks": sum(len(t) for t in files), "seconds": seconds}))


@dataclass
class Bench:
    services: Services
    queue: JobQueue
    tmp: Path
    asker: uuid.UUID
    loader: uuid.UUID
    loader_space: uuid.UUID
    log: IO[bytes]

    def ask(self, question: str) -> float:
        """Seconds to a complete extractive answer."""

        async def run() -> Answer | None:
            final = None
            async for part in self.services.answer_chain().astream(question, user_id=self.asker):
                if isinstance(part, Answer):
                    final = part
            return final

        start = time.perf_counter()
        answer = self.services.run(run())
        elapsed = time.perf_counter() - start
        assert answer is not None and answer.sources, f"no answer to {question!r}"
        return elapsed

    def ask_many(self, n: int) -> list[float]:
        return [self.ask(QUESTIONS[i % len(QUESTIONS)]) for i in range(n)]

    def start_workers(self, n: int) -> list[subprocess.Popen[bytes]]:
        """`n` `kb worker` processes, returned once each has loaded its model and
        registered (each registers an ingest and a maintenance worker)."""
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "chat_app.cli", "worker"],
                env=dict(os.environ),
                stdout=self.log,
                stderr=subprocess.STDOUT,
            )
            for _ in range(n)
        ]
        deadline = time.monotonic() + 300
        while self.queue.live_workers() < 2 * n:
            if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
                stop_workers(workers)
                raise RuntimeError(f"workers did not start: see {self.log.name}")
            time.sleep(0.2)
        return workers

    def enqueue(self, source_id: str, data: bytes) -> int:
        return self.queue.enqueue_file(
            user_id=self.loader,
            space_id=self.loader_space,
            source_id=source_id,
            data=data,
            origin="cli",
        )

    def rows(self, job_ids: Sequence[int]) -> dict[int, repo.JobRow]:
        with self.services.engine.begin() as conn:
            return repo.jobs_by_ids(conn, job_ids=list(job_ids))


def stop_workers(workers: Sequence[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.wait()


def setup(services: Services, tmp: Path, log: IO[bytes]) -> Bench:
    ensure_schema(services)
    ids = []
    with Session(services.engine) as session:
        for name in ("bench", "loader"):
            ids.append(add_user(session=session, identifier=name, password="bench-password").id)
        session.commit()
    asker, loader = ids
    spaces = []
    for user_id in ids:
        with user_scope(services.engine, user_id) as conn:
            spaces.append(
                next(s.id for s in readable_spaces(conn, user_id=user_id) if s.kind == "personal")
            )
    bench = Bench(services, services.job_queue(), tmp, asker, loader, spaces[1], log)
    bench.queue.enqueue_file(
        user_id=asker,
        space_id=spaces[0],
        source_id="reactor.md",
        data=small_markdown(),
        origin="cli",
    )
    services.run(work_until_idle(services))
    for question in QUESTIONS:  # warm up: model, pools, plans
        bench.ask(question)
    return bench


# -- 1. folder throughput ----------------------------------------------------------------


def folder_part(bench: Bench, *, files: int, sections: int) -> None:
    folder = bench.tmp / "folder"
    folder.mkdir()
    for i in range(files):
        (folder / f"handbook-{i:02d}.md").write_bytes(big_markdown(sections, f"handbook {i}"))
    paths = sorted(folder.glob("*.md"))
    planned = sum(len(t) for t in chunk_texts(paths, bench.services.ingest_options()))

    raw = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--raw-rate", str(folder)],
        env=dict(os.environ),
        check=True,
        capture_output=True,
    )
    measured = json.loads(raw.stdout.decode().strip().splitlines()[-1])
    raw_rate = measured["chunks"] / measured["seconds"]
    print(
        f"folder: {files} files, {planned} chunks; raw embed_documents (niced child process): "
        f"{measured['chunks']} chunks in {measured['seconds']:.1f} s = {raw_rate:.1f} chunks/s",
        flush=True,
    )

    rates: dict[int, float] = {}
    for n in (1, 2):
        workers = bench.start_workers(n)
        try:
            start = time.perf_counter()
            job_ids = [bench.enqueue(f"run-{n}w/{path.name}", path.read_bytes()) for path in paths]
            while not all(r.finished for r in bench.rows(job_ids).values()):
                time.sleep(0.2)
            wall = time.perf_counter() - start
        finally:
            stop_workers(workers)
        rows = bench.rows(job_ids).values()
        bad = [(r.title, r.status, r.error) for r in rows if r.status != "done"]
        assert not bad, bad
        chunks = sum(int(r.result.get("added", 0)) for r in rows)
        assert chunks == planned, (chunks, planned)
        rates[n] = chunks / wall
        print(
            f"folder, {n} worker process(es): {chunks} chunks in {wall:.1f} s (enqueue to last "
            f"job done) = {rates[n]:.1f} chunks/s, pipeline/raw {rates[n] / raw_rate:.2f}",
            flush=True,
        )
    print(
        f"folder ratios: 1 worker/raw {rates[1] / raw_rate:.2f}, 2 workers/raw "
        f"{rates[2] / raw_rate:.2f}, 2 workers/1 worker {rates[2] / rates[1]:.2f}"
    )


# -- 2. chat responsiveness --------------------------------------------------------------


def line(label: str, values: list[float], idle: list[float] | None = None) -> str:
    p50, p95 = p(values, 0.5), p(values, 0.95)
    text = f"{label}: {len(values)} answers, p50 {p50:7.1f} ms, p95 {p95:7.1f} ms"
    if idle is not None:
        text += f"; /idle p50 {p50 / p(idle, 0.5):.2f}, p95 {p95 / p(idle, 0.95):.2f}"
    return text


def in_process(bench: Bench, sections: int) -> tuple[list[float], FileResult, float]:
    """The old way: the answering process indexes the document itself (in a thread)."""
    path = bench.tmp / "in-process" / "quarry-rules.md"
    path.parent.mkdir()
    path.write_bytes(big_markdown(sections))
    embedding = threading.Event()
    results: list[FileResult] = []

    def progress(text: str) -> None:
        if text.startswith("embedding"):
            embedding.set()

    def index() -> None:
        try:
            results.append(
                ingest_file(
                    path,
                    engine=bench.services.engine,
                    embeddings=bench.services.embeddings,
                    user_id=bench.loader,
                    space_id=bench.loader_space,
                    options=bench.services.ingest_options(),
                    display_name="in-process/quarry-rules.md",
                    progress=progress,
                )
            )
        finally:
            embedding.set()

    start = time.perf_counter()
    thread = threading.Thread(target=index, name="in-process-ingest")
    thread.start()
    embedding.wait()
    busy: list[float] = []
    while thread.is_alive():
        busy.append(bench.ask(QUESTIONS[len(busy) % len(QUESTIONS)]))
    thread.join()
    seconds = time.perf_counter() - start
    assert results and results[0].ok, results
    return busy, results[0], seconds


def by_worker(bench: Bench, sections: int) -> tuple[list[float], repo.JobRow]:
    workers = bench.start_workers(1)
    try:
        job_id = bench.enqueue("worker/quarry-rules.md", big_markdown(sections))
        while bench.rows([job_id])[job_id].phase != "embedding":
            time.sleep(0.2)  # ask while the chunks are being embedded
        busy: list[float] = []
        while not bench.rows([job_id])[job_id].finished:
            busy.append(bench.ask(QUESTIONS[len(busy) % len(QUESTIONS)]))
        final = bench.rows([job_id])[job_id]
    finally:
        stop_workers(workers)
    assert final.status == "done", (final.status, final.error)
    return busy, final


def chat_part(bench: Bench, *, sections: int, questions: int) -> None:
    idle = bench.ask_many(questions)
    before, result, before_s = in_process(bench, sections)
    after, final = by_worker(bench, sections)
    idle_end = bench.ask_many(questions)

    assert final.started_at is not None and final.finished_at is not None
    worker_s = (final.finished_at - final.started_at).total_seconds()
    worker_chunks = int(final.result.get("chunks", 0))
    print(line("idle", idle))
    print(line("before: indexing in the answering process", before, idle))
    print(line("after: indexing in a kb worker process", after, idle))
    print(line("idle again at the end", idle_end, idle))
    print(
        f"p95 ratio busy/idle: before {p(before, 0.95) / p(idle, 0.95):.2f}, "
        f"after {p(after, 0.95) / p(idle, 0.95):.2f} (target <= 2)"
    )
    print(
        f"indexing the {result.chunks}-chunk document: in-process {before_s:.1f} s "
        f"({result.chunks / before_s:.1f} chunks/s, from the start of the thread); "
        f"worker {worker_s:.1f} s ({worker_chunks / worker_s:.1f} chunks/s, job start to end)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--part", choices=("all", "folder", "chat"), default="all")
    parser.add_argument("--files", type=int, default=10, help="files in the folder")
    parser.add_argument("--file-sections", type=int, default=170, help="chunks per folder file")
    parser.add_argument(
        "--sections", type=int, default=1000, help="chunks of the chat part's document"
    )
    parser.add_argument(
        "--questions", type=int, default=100, help="idle questions, at the start and the end"
    )
    parser.add_argument("--raw-rate", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_rate is not None:
        raw_rate_process(args.raw_rate)
        return

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kb-bench-jobs-") as name:
        tmp = Path(name)
        os.environ.pop("DATABASE_URL", None)
        os.environ["KB_DATA_DIR"] = name
        os.environ["KB_LLM"] = ""
        services = open_services(load_settings(), require_schema=False)
        print(
            f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the start"
        )
        with open(tmp / "workers.log", "wb") as log:
            try:
                bench = setup(services, tmp, log)
                if args.part in ("all", "folder"):
                    folder_part(bench, files=args.files, sections=args.file_sections)
                if args.part in ("all", "chat"):
                    chat_part(bench, sections=args.sections, questions=args.questions)
            finally:
                services.close()
    print(
        f"machine: load average {os.getloadavg()[0]:.2f} at the end; "
        f"bench took {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
