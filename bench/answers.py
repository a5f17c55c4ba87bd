"""Extractive answers under concurrency, through Chainlit's real socket transport.

    python bench/answers.py                        # 1, 5 and 15 users, real documents
    python bench/answers.py --levels 1,5 --rounds 2
    python bench/answers.py --data-dir /tmp/kb-bench --source /path/to/other/checkout

Starts `kb serve` on a data directory of its own (kept with --data-dir, so a second
run, e.g. of another checkout given by --source, reuses the same corpus), with the
real embedding model and no LLM. The corpus: the documents given by --docs (default:
the Federal Register PDF and the Mozilla page of ../shared/docs) ingested once for
user bench00 and copied row by row, vectors included, to the other users (so every
user has the same chunks and ingestion costs one embedding pass); without documents,
a synthetic corpus.

Each simulated user logs in like the browser (POST /login, password form -> the
access-token cookie), connects a Socket.IO client to /ws/socket.io with the auth the
frontend sends (`clientType`, `sessionId`, `threadId`, `userEnv`, `chatProfile`),
emits `connection_successful`, then per question a `client_message` with a user step
(`type: user_message`, uuid4 `id`, `output`), and takes the answer as complete at the
`task_end` that follows the server's `task_start` (Chainlit emits them around
`on_message`). Questions are unique per request (built from the corpus' own
sentences), so no answer is a repeat of another.

Per level of simultaneous users it prints p50/p95 latency, answers/s, the split of
the app's time between retrieval and answer building (from the usage_logs rows of
the level: retrieval_ms, generation_ms), and, in the same run right after, the
latency of retrieval alone (`Retriever.search` with the query embedding, from this
process at the same concurrency).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

# Run as a script, this folder is first on sys.path and this file would shadow the
# `retrieval` package: drop the folder before importing the project.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import httpx  # noqa: E402
import socketio  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from chat_app.services import Services, open_services  # noqa: E402
from chat_app.settings import load_settings  # noqa: E402
from db.models import User  # noqa: E402
from db.scoped import user_scope  # noqa: E402
from db.spaces import personal_space_id  # noqa: E402
from db.users import add_user  # noqa: E402

PASSWORD = "bench-password-1"
DOCS = Path(__file__).resolve().parents[2] / "shared" / "docs"
DEFAULT_DOCS = [DOCS / "federal-register-2020-17221.pdf", DOCS / "wikipedia-mozilla.html"]
_WORD = re.compile(r"[A-Za-z][A-Za-z-]{3,}")


@dataclass(frozen=True)
class Level:
    users: int
    seconds: list[float]
    wall: float
    retrieval_ms: float
    generation_ms: float
    retrieval_alone: list[float]


def _percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the corpus -------------------------------------------------------------------


def _login(n: int) -> str:
    return f"bench{n:02d}"


def prepare(services: Services, docs: Sequence[Path], users: int) -> dict[str, uuid.UUID]:
    """Users bench00.. with the same chunks; the documents are embedded once."""
    from sqlalchemy.orm import Session

    with Session(services.engine) as session:
        known = {u.identifier: u.id for u in session.scalars(sa.select(User))}
        for n in range(users):
            if _login(n) not in known:
                user = add_user(session=session, identifier=_login(n), password=PASSWORD)
                known[user.identifier] = user.id
        session.commit()
    ids = {_login(n): uuid.UUID(str(known[_login(n)])) for n in range(users)}
    first = ids[_login(0)]
    with services.engine.connect() as connection:
        have = connection.execute(
            sa.text("SELECT count(*) FROM document_chunks WHERE space_id = :s"),
            {"s": _personal(services, first)},
        ).scalar_one()
    if not have:
        _ingest(services, first, [d for d in docs if d.exists()])
    # Each user gets a copy in their personal space (the searches then scan as many
    # rows per user as with real uploads).
    copy = sa.text(
        """
        INSERT INTO document_chunks (chunk_id, space_id, added_by, text, metadata,
                                     source_type, source_id, source_url, chunk_index, embedding)
        SELECT chunk_id || ':' || CAST(:user_id AS text), :space_id, :user_id, text, metadata,
               source_type, source_id, source_url, chunk_index, embedding
        FROM document_chunks WHERE space_id = :first
        ON CONFLICT (chunk_id) DO NOTHING
        """
    )
    with services.engine.begin() as connection:  # as the owner: row-level security allows
        for user_id in list(ids.values())[1:]:
            connection.execute(
                copy,
                {
                    "user_id": user_id,
                    "space_id": _personal(services, user_id),
                    "first": _personal(services, first),
                },
            )
    return ids


def _personal(services: Services, user_id: uuid.UUID) -> uuid.UUID:
    with services.engine.connect() as connection:
        return personal_space_id(connection, user_id=user_id)


def _ingest(services: Services, user_id: uuid.UUID, docs: Sequence[Path]) -> None:
    if docs:
        from ingest.files import ingest_paths

        print(f"Embedding {', '.join(d.name for d in docs)} once (real model)…", flush=True)
        for result in ingest_paths(
            docs,
            engine=services.engine,
            embeddings=services.embeddings,
            user_id=user_id,
            space_id=_personal(services, user_id),
            options=services.ingest_options(),
        ):
            print(f"  {result}", flush=True)
        return
    from db.chunks import ChunkRow, insert_chunks

    print("No documents: a synthetic corpus of 200 chunks.", flush=True)
    rng = random.Random(7)
    topics = ["kettle", "reactor", "invoice", "garden", "satellite", "contract", "bridge"]
    texts = []
    for i in range(200):
        topic = rng.choice(topics)
        sentences = [
            f"The {topic} report {i}.{j} says the {rng.choice(topics)} budget rose by "
            f"{rng.randint(2, 90)} percent in {rng.randint(1990, 2024)}."
            for j in range(8)
        ]
        texts.append(" ".join(sentences))
    vectors = services.embeddings.embed_documents(texts)
    space_id = _personal(services, user_id)
    rows = [
        ChunkRow(
            chunk_id=f"synthetic-{i}",
            space_id=space_id,
            added_by=user_id,
            text=text,
            embedding=vector,
            source_type="file",
            source_id=f"synthetic-{i // 20}.txt",
            chunk_index=i % 20,
            metadata={"title": f"synthetic-{i // 20}.txt"},
        )
        for i, (text, vector) in enumerate(zip(texts, vectors, strict=True))
    ]
    with user_scope(services.engine, user_id) as connection:
        insert_chunks(connection, rows)


def questions(services: Services, user_id: uuid.UUID, count: int, seed: int) -> list[str]:
    """Unique extractive questions made of a sentence's words from the corpus."""
    with services.engine.connect() as connection:
        texts = [
            r[0]
            for r in connection.execute(
                sa.text("SELECT text FROM document_chunks WHERE space_id = :s ORDER BY chunk_id"),
                {"s": _personal(services, user_id)},
            )
        ]
    rng = random.Random(seed)
    made: list[str] = []
    seen: set[str] = set()
    while len(made) < count:
        words = _WORD.findall(rng.choice(texts))
        if len(words) < 12:
            continue
        start = rng.randrange(0, len(words) - 8)
        question = "What does the document say about " + " ".join(words[start : start + 6]) + "?"
        if question not in seen:
            seen.add(question)
            made.append(question)
    return made


# -- the simulated browsers ------------------------------------------------------


class Browser:
    """One logged-in user with a Socket.IO connection, as Chainlit's frontend makes it."""

    def __init__(self, base: str, login: str) -> None:
        self.base, self.login = base, login
        self.sio = socketio.AsyncClient(reconnection=False)
        self.started = asyncio.Event()
        self.ended = asyncio.Event()
        self.ready = asyncio.Event()

        @self.sio.on("task_start")
        async def task_start(*_: object) -> None:
            self.started.set()

        @self.sio.on("task_end")
        async def task_end(*_: object) -> None:
            if self.started.is_set():
                self.ended.set()

        @self.sio.on("set_commands")
        async def set_commands(*_: object) -> None:
            self.ready.set()  # on_chat_start has run: the session is ready for messages

    async def connect(self) -> None:
        async with httpx.AsyncClient(base_url=self.base, timeout=120) as http:
            response = await http.post(
                "/login", data={"username": self.login, "password": PASSWORD}
            )
            response.raise_for_status()
            cookies = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
        await self.sio.connect(
            self.base,
            socketio_path="/ws/socket.io",
            transports=["websocket"],
            wait_timeout=120,
            headers={"Cookie": cookies},
            auth={
                "clientType": "webapp",
                "sessionId": str(uuid.uuid4()),
                "threadId": "",
                "userEnv": "{}",
                "chatProfile": "",
            },
        )
        await self.sio.emit("connection_successful")
        await self.ready.wait()

    async def ask(self, question: str) -> float:
        self.started.clear()
        self.ended.clear()
        message = {
            "threadId": "",
            "id": str(uuid.uuid4()),
            "name": self.login,
            "type": "user_message",
            "output": question,
            "createdAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "metadata": {},
        }
        began = time.perf_counter()
        await self.sio.emit("client_message", {"message": message, "fileReferences": []})
        await self.ended.wait()
        return time.perf_counter() - began

    async def close(self) -> None:
        await self.sio.disconnect()


async def run_level(
    base: str, logins: Sequence[str], asked: dict[str, list[str]]
) -> tuple[list[float], float]:
    browsers = [Browser(base, login) for login in logins]
    await asyncio.gather(*(b.connect() for b in browsers))
    try:

        async def one(browser: Browser) -> list[float]:
            return [await browser.ask(q) for q in asked[browser.login]]

        began = time.perf_counter()
        per_user = await asyncio.gather(*(one(b) for b in browsers))
        wall = time.perf_counter() - began
    finally:
        await asyncio.gather(*(b.close() for b in browsers), return_exceptions=True)
    return [s for user in per_user for s in user], wall


async def retrieval_alone(
    services: Services, ids: dict[str, uuid.UUID], asked: dict[str, list[str]]
) -> list[float]:
    """The same questions through `Retriever.search` (query embedding included), with
    the same number of users at once."""
    retriever = services.retriever
    k = services.settings.top_k

    async def one(login: str) -> list[float]:
        times = []
        for question in asked[login]:
            began = time.perf_counter()
            await retriever.search(question, user_id=ids[login], k=k, mode="hybrid")
            times.append(time.perf_counter() - began)
        return times

    per_user = await asyncio.gather(*(one(login) for login in asked))
    return [s for user in per_user for s in user]


def usage_split(services: Services, since: datetime) -> tuple[float, float]:
    with services.engine.connect() as connection:
        row = connection.execute(
            sa.text(
                "SELECT sum(retrieval_ms), sum(generation_ms) FROM usage_logs "
                "WHERE action = 'ask' AND created_at >= :since"
            ),
            {"since": since},
        ).one()
    return float(row[0] or 0), float(row[1] or 0)


def start_server(source: Path, data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env.pop("CI", None)
    env.update(
        KB_DATA_DIR=str(data_dir),
        KB_LLM="",
        PYTHONPATH=str(source),
        HF_HUB_OFFLINE="1",
        KB_ADMIN_PASSWORD="bench-admin-1",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "chat_app.cli", "serve", "--port", str(port)],
        cwd=source,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_healthy(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"kb serve exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("kb serve did not answer /health in 300 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="1,5,15", help="simultaneous users per level")
    parser.add_argument("--rounds", type=int, default=3, help="questions per user per level")
    parser.add_argument("--docs", nargs="*", type=Path, default=DEFAULT_DOCS)
    parser.add_argument("--data-dir", type=Path, default=None, help="kept between runs")
    parser.add_argument(
        "--source", type=Path, default=_HERE.parent, help="checkout whose app is served"
    )
    parser.add_argument("--label", default="", help="a name for this run in the output")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    data_dir = (args.data_dir or Path(f"/tmp/kb-bench-answers-{os.getpid()}")).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o755)
    os.environ["HF_HUB_OFFLINE"] = "1"
    settings = load_settings(data_dir=data_dir, llm=None)
    from chat_app.cli.serve_cmd import ensure_schema

    services = open_services(settings, require_schema=False)
    ensure_schema(services)
    ids = prepare(services, args.docs, max(levels))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = data_dir / "server.log"
    proc = start_server(args.source.resolve(), data_dir, port, log)
    results: list[Level] = []
    try:
        wait_healthy(base, proc, log)
        print(f"kb serve ({args.source.resolve()}) at {base}; load {os.getloadavg()}", flush=True)
        pool = questions(services, ids[_login(0)], 5 + sum(levels) * args.rounds, seed=13)
        warm = {_login(0): pool[:5]}  # loads the model in the server, fills the pools
        asyncio.run(run_level(base, [_login(0)], warm))
        offset = 5
        for users in levels:
            logins = [_login(n) for n in range(users)]
            asked = {}
            for login in logins:
                asked[login] = pool[offset : offset + args.rounds]
                offset += args.rounds
            since = datetime.now(UTC)
            seconds, wall = asyncio.run(run_level(base, logins, asked))
            time.sleep(1)  # the last usage rows are written after the answer is sent
            retrieval_ms, generation_ms = usage_split(services, since)
            alone = services.run(retrieval_alone(services, ids, asked))
            results.append(Level(users, seconds, wall, retrieval_ms, generation_ms, alone))
            print(f"  {users} users done: p95 {_percentile(seconds, 0.95):.2f} s", flush=True)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
        services.close()
    title = f"bench/answers.py {args.label}".strip()
    print(f"\n{title}: extractive answers through Chainlit's socket (load {os.getloadavg()})")
    print(
        f"{'users':>5} {'answers':>7} {'p50 s':>6} {'p95 s':>6} {'ans/s':>6} "
        f"{'retrieval':>9} {'answer':>7} {'retr. alone p50/p95 s':>22}"
    )
    for r in results:
        total = (r.retrieval_ms + r.generation_ms) or 1.0
        print(
            f"{r.users:>5} {len(r.seconds):>7} {_percentile(r.seconds, 0.5):>6.2f} "
            f"{_percentile(r.seconds, 0.95):>6.2f} {len(r.seconds) / r.wall:>6.2f} "
            f"{r.retrieval_ms / total:>9.0%} {r.generation_ms / total:>7.0%} "
            f"{_percentile(r.retrieval_alone, 0.5):>10.2f} / "
            f"{_percentile(r.retrieval_alone, 0.95):.2f}"
        )


if __name__ == "__main__":
    main()
