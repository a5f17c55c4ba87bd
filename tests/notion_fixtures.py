"""Fixtures for Notion tests: a small workspace, its fake server, a connected user."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from db.chunks import list_sources
from db.models import DocumentChunk
from db.scoped import user_scope
from ingest.notion.report import SyncReport
from ingest.notion.service import NotionOptions, connect_notion, sync_notion
from tests.conftest import personal_space
from tests.fake_notion import FakeNotion, Workspace
from tests.fake_notion import builders as b
from tests.fakes import HashEmbeddings

SECRET_KEY = "test secret key: not for production"


def notion_options(base_url: str, **overrides: Any) -> NotionOptions:
    """Options for the fake server: no pacing, short backoff, small chunks."""
    values: dict[str, Any] = {
        "secret_key": SECRET_KEY,
        "base_url": base_url,
        "requests_per_second": 0,
        "backoff_seconds": 0.01,
        "chunk_size": 400,
        "chunk_overlap": 40,
    }
    return NotionOptions(**(values | overrides))


@dataclass
class Demo:
    """Ids of the demo workspace's pages, by role."""

    workspace: Workspace
    handbook: str  # top level, with headings, lists, a table, a child page and a database
    onboarding: str  # child of handbook, hidden from search (only recursion finds it)
    checklist: str  # grandchild, hidden from search
    faq: str  # top level, with a toggle and a callout
    database: str
    data_source: str
    rows: tuple[str, ...]

    @property
    def page_ids(self) -> set[str]:
        return {self.handbook, self.onboarding, self.checklist, self.faq, *self.rows}


def build_demo() -> Demo:
    ws = Workspace(name="Acme")
    handbook = ws.add_page(
        "Team handbook",
        [
            b.heading(1, "Setup"),
            b.paragraph("Install the toolchain with the bootstrap script."),
            b.heading(2, "Install"),
            b.bulleted("Python 3.12", b.bulleted("with the venv module")),
            b.numbered("Clone the repository"),
            b.numbered("Run the tests"),
            b.table([["Tool", "Version"], ["ruff", "0.6"]]),
            b.heading(1, "Holidays"),
            b.paragraph("Every employee has twenty-five days of paid leave."),
        ],
    )
    onboarding = ws.add_page(
        "Onboarding",
        [
            b.paragraph("Your first week: meet the team and pair with a buddy."),
        ],
        parent=handbook,
        searchable=False,
    )
    checklist = ws.add_page(
        "Laptop checklist",
        [
            b.todo("Enable disk encryption", checked=True),
            b.todo("Install the password manager"),
        ],
        parent=onboarding,
        searchable=False,
    )
    database, source = ws.add_database(
        "Projects",
        parent=handbook,
        schema={"Status": "select", "Owner": "rich_text"},
        searchable=False,
    )
    rows = (
        ws.add_row(
            source,
            {"Name": "Apollo", "Status": "Active", "Owner": "Grace"},
            [b.paragraph("Apollo migrates billing to the new ledger.")],
        ),
        ws.add_row(
            source,
            {"Name": "Hermes", "Status": "Paused", "Owner": "Linus"},
            [b.paragraph("Hermes replaces the notification service.")],
        ),
        ws.add_row(source, {"Name": "Zephyr", "Status": "Done", "Owner": "Ada"}),
    )
    faq = ws.add_page(
        "FAQ",
        [
            b.toggle("How do I reset my password?", b.paragraph("Use the self-service portal.")),
            b.callout("The office closes at 7 pm on Fridays.", "⏰"),
        ],
    )
    return Demo(ws, handbook, onboarding, checklist, faq, database, source, rows)


@pytest.fixture
def demo() -> Demo:
    return build_demo()


@pytest.fixture
def fake(demo: Demo) -> Iterator[FakeNotion]:
    with FakeNotion(demo.workspace, max_page_size=2) as server:
        yield server


@dataclass
class Connected:
    """A user's personal space connected to the fake server, with a one-call sync."""

    engine: Engine
    user_id: uuid.UUID
    fake: FakeNotion
    embeddings: HashEmbeddings

    @property
    def space_id(self) -> uuid.UUID:
        return personal_space(self.engine, self.user_id)

    def sync(self, **kwargs: Any) -> SyncReport:
        progress = kwargs.pop("progress", None)
        return sync_notion(
            engine=self.engine,
            embeddings=self.embeddings,
            user_id=self.user_id,
            space_id=self.space_id,
            options=notion_options(self.fake.url, **kwargs),
            progress=progress,
        )

    def source_ids(self) -> set[str]:
        with user_scope(self.engine, self.user_id) as conn:
            return {
                s.source_id
                for s in list_sources(conn, space_ids=[self.space_id], source_type="notion")
            }

    def chunks(self, source_id: str | None = None) -> list[dict[str, Any]]:
        table = DocumentChunk.__table__
        query = sa.select(
            table.c.source_id, table.c.source_url, table.c.text, table.c.metadata
        ).where(table.c.space_id == self.space_id)
        if source_id:
            query = query.where(table.c.source_id == source_id)
        with user_scope(self.engine, self.user_id) as conn:
            return [dict(r._mapping) for r in conn.execute(query.order_by(table.c.chunk_index))]


@pytest.fixture
def connected(
    engine: Engine, make_user: Callable[..., Any], fake: FakeNotion, fake_embeddings: HashEmbeddings
) -> Connected:
    user = make_user("alice")
    connect_notion(
        engine=engine,
        user_id=user.id,
        space_id=personal_space(engine, user.id),
        token=fake.workspace.token,
        options=notion_options(fake.url),
    )
    return Connected(engine, user.id, fake, fake_embeddings)
