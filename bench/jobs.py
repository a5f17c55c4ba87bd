"""Chat responsiveness while a worker indexes a large document (issue 12).

    python bench/jobs.py [--sections 1000] [--questions 20] [--workers 1]

A fresh embedded PostgreSQL in a temporary folder (KB_DATA_DIR), a user with a small
document, then:
1. idle: p50/p95 of answering questions (retrieval + extractive answer, no LLM: what
   the web process does for a question), no job running (and again at the end, when
   the large document is searched too: not the baseline of the ratio);
2. busy: the same questions, asked again and again while `kb worker` processes
   (separate processes, niced as `kb serve` starts them) index a document of
   `--sections` chunks;
and prints both, their ratio (the issue's target: p95 busy <= 2x idle on 2 cores), and
the indexing rate of the job (chunks/s from the job's start and end).

The CPU is shared with whatever else runs: the ratio, measured in one run, is the figure.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

# Run as a script, this file's folder is first on sys.path and bench/retrieval.py would
# shadow the `retrieval` package: drop that folder before importing the project.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from sqlalchemy.orm import Session  # noqa: E402

from chat_app.cli.serve_cmd import ensure_schema  # noqa: E402
from chat_app.jobs.runner import work_until_idle  # noqa: E402
from chat_app.services import Services, open_services  # noqa: E402
from chat_app.settings import load_settings  # noqa: E402
from db import jobs as repo  # noqa: E402
from db.scoped import user_scope  # noqa: E402
from db.spaces import readable_spaces  # noqa: E402
from db.users import add_user  # noqa: E402
from retrieval.chain import Answer  # noqa: E402

FACT = "The Zorblatt reactor operates at exactly 4217 kelvin during the night shift."
QUESTIONS = [
    "At what temperature does the Zorblatt reactor operate?",
    "How hot is the reactor at night?",
    "What cools the Zorblatt reactor?",
    "When is maintenance done on the reactor?",
]


def big_markdown(sections: int) -> bytes:
    """About one ~900-character chunk per section (as the browser test's handbook)."""
    filler = " ".join(f"procedure{i % 41} clause{i % 17} item{i}" for i in range(30))
    return "\n\n".join(
        f"## Section {n}: rules of the quarry\n\nSection {n} says: {filler} (end of {n})."
        for n in range(sections)
    ).encode()


def small_markdown() -> bytes:
    return (
        "# Zorblatt reactor\n\n"
        f"{FACT} The reactor is cooled by liquid xenon pumped from the northern tank.\n\n"
        "## Maintenance\n\nMaintenance happens every second Tuesday; the crew wears blue suits.\n"
    ).encode()


def ask(services: Services, user_id: uuid.UUID, question: str) -> float:
    """Seconds to a complete extractive answer."""

    async def run() -> Answer | None:
        final = None
        async for part in services.answer_chain().astream(question, user_id=user_id):
            if isinstance(part, Answer):
                final = part
        return final

    start = time.perf_counter()
    answer = services.run(run())
    elapsed = time.perf_counter() - start
    assert answer is not None and answer.sources, f"no answer to {question!r}"
    return elapsed


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", type=int, default=1000)
    parser.add_argument(
        "--questions", type=int, default=100, help="idle questions, before and after"
    )
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="kb-bench-jobs-") as tmp:
        os.environ.pop("DATABASE_URL", None)
        os.environ["KB_DATA_DIR"] = tmp
        os.environ["KB_LLM"] = ""
        settings = load_settings()
        services = open_services(settings, require_schema=False)
        workers: list[subprocess.Popen[bytes]] = []
        try:
            ensure_schema(services)
            with Session(services.engine) as session:
                user = add_user(session=session, identifier="bench", password="bench-password")
                session.commit()
                user_id = user.id
            with user_scope(services.engine, user_id) as conn:
                space_id = next(
                    s.id for s in readable_spaces(conn, user_id=user_id) if s.kind == "personal"
                )
            queue = services.job_queue()
            queue.enqueue_file(
                user_id=user_id,
                space_id=space_id,
                source_id="reactor.md",
                data=small_markdown(),
                origin="cli",
            )
            services.run(work_until_idle(services))
            for question in QUESTIONS:  # warm up: model, pools, plans
                ask(services, user_id, question)

            idle = [
                ask(services, user_id, QUESTIONS[i % len(QUESTIONS)]) for i in range(args.questions)
            ]

            env = dict(os.environ)
            log = open(Path(tmp) / "workers.log", "wb")  # noqa: SIM115 (closed below)
            workers = [
                subprocess.Popen(
                    [sys.executable, "-m", "chat_app.cli", "worker"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
                for _ in range(args.workers)
            ]
            job_id = queue.enqueue_file(
                user_id=user_id,
                space_id=space_id,
                source_id="quarry-rules.md",
                data=big_markdown(args.sections),
                origin="cli",
            )

            def row() -> repo.JobRow:
                with services.engine.begin() as conn:
                    return repo.jobs_by_ids(conn, job_ids=[job_id])[job_id]

            while row().phase != "embedding":  # ask while the chunks are being embedded
                time.sleep(0.2)
            busy: list[float] = []
            while not row().finished:
                busy.append(ask(services, user_id, QUESTIONS[len(busy) % len(QUESTIONS)]))
            final = row()
            log.close()
            # Idle again, now with the large document visible (its chunks commit in one
            # transaction at the end of the job, so the busy phase searched the small set).
            after = [
                ask(services, user_id, QUESTIONS[i % len(QUESTIONS)]) for i in range(args.questions)
            ]
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                worker.wait()
            services.close()

    assert final.status == "done", (final.status, final.error)
    chunks = int(final.result.get("chunks", 0))
    assert final.started_at is not None and final.finished_at is not None
    seconds = (final.finished_at - final.started_at).total_seconds()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end")
    print(f"idle: {len(idle)} answers, p50 {p(idle, 0.5):7.1f} ms, p95 {p(idle, 0.95):7.1f} ms")
    print(
        f"idle, with the large file: {len(after)} answers, p50 {p(after, 0.5):7.1f} ms, "
        f"p95 {p(after, 0.95):7.1f} ms"
    )
    print(f"busy: {len(busy)} answers, p50 {p(busy, 0.5):7.1f} ms, p95 {p(busy, 0.95):7.1f} ms")
    print(
        f"ratio busy/idle: p50 {p(busy, 0.5) / p(idle, 0.5):.2f}, "
        f"p95 {p(busy, 0.95) / p(idle, 0.95):.2f}"
    )
    print(
        f"indexing job: {chunks} chunks in {seconds:.1f} s ({chunks / seconds:.1f} chunks/s, "
        f"{args.workers} worker process(es)); median answer {statistics.median(busy) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
