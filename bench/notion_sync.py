"""Notion sync: a full sync vs a no-change re-sync of a generated 500-page workspace.

    python bench/notion_sync.py                  # 500 pages, HashEmbeddings (fake, fast)
    python bench/notion_sync.py --real-model     # all-MiniLM-L6-v2 (the default model)
    python bench/notion_sync.py --pages 2000

The workspace is served by the fake Notion server (tests/fake_notion) on 127.0.0.1
with page size 100 (the API's maximum) and RATE LIMITING OFF on both sides: the
client does not pace (requests_per_second=0) and the server never answers 429, so
the figures measure our work, not the 3 requests/s Notion allows. The time the real
API's average rate would impose is printed alongside (requests / 3).

A fresh embedded PostgreSQL is started in a temporary folder and migrated to head.
Prints, measured in the same run: full sync time and requests, no-change re-sync
time and requests, their ratio (target: re-sync < 5% of a full sync), block
requests and embedding calls of the re-sync (target: 0), and an incremental sync
after editing 1% of the pages.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

# Run as a script, this folder comes first on sys.path; put the project root there
# instead (the fake server lives in tests/).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from langchain_core.embeddings import Embeddings  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from db.embedded import start_embedded  # noqa: E402
from db.engine import PoolConfig, make_engine  # noqa: E402
from db.schema import upgrade_to_head  # noqa: E402
from db.spaces import personal_space_id  # noqa: E402
from db.users import add_user  # noqa: E402
from ingest.notion.report import SyncReport  # noqa: E402
from ingest.notion.service import NotionOptions, connect_notion, sync_notion  # noqa: E402
from tests.fake_notion import FakeNotion, Workspace  # noqa: E402
from tests.fake_notion import builders as b  # noqa: E402
from tests.fakes import HashEmbeddings  # noqa: E402

SECRET = "bench secret key"
_VOCABULARY = (
    "alpaca llama fleece herd andes plateau shearing wool fibre breeder valley river "
    "glacier altitude farmer market textile spinning loom dye yarn harvest season winter "
    "summer feeding water shelter fence health vaccine record ledger invoice shipment "
    "export cooperative village mountain trail stone quality grade colour"
)
WORDS = tuple(_VOCABULARY.split())


class Counting(Embeddings):
    """Counts calls and texts of any embeddings object."""

    def __init__(self, inner: Embeddings) -> None:
        self.inner, self.calls, self.texts = inner, 0, 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        self.texts += len(texts)
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)


def sentence(rng: random.Random, n: int = 14) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def page_blocks(rng: random.Random, number: int) -> list[b.BlockSpec]:
    """About 1.5 KB of mixed content: headings, paragraphs, nested lists, a table, code."""
    return [
        b.heading(1, f"Section {number}"),
        b.paragraph(sentence(rng, 30)),
        b.bulleted(sentence(rng), b.bulleted(sentence(rng)), b.bulleted(sentence(rng))),
        b.numbered(sentence(rng)),
        b.numbered(sentence(rng)),
        b.heading(2, "Details"),
        b.paragraph(sentence(rng, 40)),
        b.table([["Item", "Value"], [rng.choice(WORDS), str(rng.randint(1, 99))]]),
        b.todo(sentence(rng, 6), checked=rng.random() < 0.5),
        b.code("measure --herd all", "shell"),
    ]


def build_workspace(pages: int, seed: int = 7) -> tuple[Workspace, list[str]]:
    """`pages` pages: 10% top level, 70% child pages (half hidden from search), 20% rows."""
    rng = random.Random(seed)
    ws = Workspace(name="Bench")
    ids: list[str] = []
    top = max(1, pages // 10)
    rows = pages // 5
    for i in range(top):
        ids.append(ws.add_page(f"Area {i}", page_blocks(rng, i)))
    _, source = ws.add_database(
        "Inventory",
        parent=ids[0],
        searchable=False,
        schema={"Status": "select", "Owner": "rich_text"},
    )
    for i in range(rows):
        ids.append(
            ws.add_row(
                source,
                {"Name": f"Item {i}", "Status": rng.choice(["a", "b"]), "Owner": rng.choice(WORDS)},
                [b.paragraph(sentence(rng, 25))],
            )
        )
    i = 0
    while len(ids) < pages:
        parent = rng.choice(ids[:top] + ids[top + rows :])
        ids.append(
            ws.add_page(
                f"Note {i}", page_blocks(rng, i), parent=parent, searchable=rng.random() < 0.5
            )
        )
        i += 1
    return ws, ids


def timed_sync(
    fake: FakeNotion,
    engine: Engine,
    embeddings: Counting,
    user_id: uuid.UUID,
    space_id: uuid.UUID,
) -> tuple[SyncReport, float, int, int]:
    fake.reset_requests()
    calls = embeddings.calls
    start = time.perf_counter()
    report = sync_notion(
        engine=engine,
        embeddings=embeddings,
        user_id=user_id,
        space_id=space_id,
        options=NotionOptions(secret_key=SECRET, base_url=fake.url, requests_per_second=0),
    )
    seconds = time.perf_counter() - start
    assert report.status == "success", report.errors
    return report, seconds, fake.count(), embeddings.calls - calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=500)
    parser.add_argument(
        "--real-model",
        action="store_true",
        help="embed with all-MiniLM-L6-v2 instead of HashEmbeddings",
    )
    args = parser.parse_args()

    if args.real_model:
        from retrieval.embeddings import load_embeddings

        inner: Embeddings = load_embeddings(None)
        print("embeddings: all-MiniLM-L6-v2 (real model)")
    else:
        inner = HashEmbeddings()
        print("embeddings: HashEmbeddings (fake bag-of-words; the model is not the point)")
    embeddings = Counting(inner)
    ws, ids = build_workspace(args.pages)
    print(
        f"workspace: {len(ids)} pages generated; fake server page size 100; "
        "rate limiting OFF (client unpaced, server never 429s)"
    )

    with tempfile.TemporaryDirectory(prefix="kb-bench-notion-") as tmp:
        server = start_embedded(Path(tmp) / "pgdata")
        engine = make_engine(server.url, PoolConfig(pool_size=2, max_overflow=2))
        try:
            upgrade_to_head(engine, embedding_dimension=384)
            with Session(engine) as session:
                user = add_user(session=session, identifier="bench", password="password123")
                session.commit()
                user_id = user.id
                space_id = personal_space_id(session, user_id=user_id)
            with FakeNotion(ws, max_page_size=100) as fake:
                connect_notion(
                    engine=engine,
                    user_id=user_id,
                    space_id=space_id,
                    token=ws.token,
                    options=NotionOptions(secret_key=SECRET, base_url=fake.url),
                )
                full, full_s, full_req, full_calls = timed_sync(
                    fake, engine, embeddings, user_id, space_id
                )
                full_counts = fake.counts()
                again, again_s, again_req, again_calls = timed_sync(
                    fake, engine, embeddings, user_id, space_id
                )
                again_counts = fake.counts()
                rng = random.Random(1)
                edited = rng.sample(ids, max(1, len(ids) // 100))
                for page_id in edited:
                    ws.edit_page(page_id, append=sentence(rng))
                inc, inc_s, inc_req, inc_calls = timed_sync(
                    fake, engine, embeddings, user_id, space_id
                )
        finally:
            engine.dispose()
            server.stop()

    ratio = again_s / full_s
    print(
        f"\nfull sync:      {full_s:7.2f} s  {full.pages_new} pages new, "
        f"{full.chunks_written} chunks, {full_req} requests {dict(full_counts)}, "
        f"{full_calls} embedding calls"
    )
    print(
        f"no-change sync: {again_s:7.2f} s  {again.pages_unchanged} unchanged, "
        f"{again_req} requests {dict(again_counts)}, "
        f"block requests {again_counts['blocks.children'] + again_counts['blocks']}, "
        f"{again_calls} embedding calls"
    )
    print(
        f"ratio re-sync / full: {ratio:.2%} (target < 5%) -> {'OK' if ratio < 0.05 else 'MISSED'}"
    )
    print(
        f"edit {len(edited)} pages:   {inc_s:7.2f} s  {inc.pages_updated} updated, "
        f"{inc.pages_unchanged} unchanged, {inc_req} requests, {inc_calls} embedding calls"
    )
    print(
        f"at Notion's 3 requests/s the request floor would be: full {full_req / 3:.0f} s, "
        f"no-change {again_req / 3:.0f} s, edit {inc_req / 3:.0f} s"
    )


if __name__ == "__main__":
    main()
