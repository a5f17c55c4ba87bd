"""Overview questions ("what is in my knowledge base?") answered from the index."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from db import spaces as repo
from db.chunks import ChunkRow, central_chunks, insert_chunks, list_sources
from db.models import User
from db.scoped import user_scope
from db.usage import list_usage
from retrieval.chain import Answer, AnswerChain, AnswerConfig
from retrieval.overview import parse_overview
from retrieval.prompts import EXTRACTIVE_LABEL
from retrieval.retriever import Retriever
from tests.conftest import personal_space
from tests.fakes import HashEmbeddings
from tests.test_chain import collect, fake_llm

KETTLE = [
    "The Zephyr kettle boils water in ninety seconds with its steel heating element.",
    "The Zephyr kettle carries a two year warranty on the heating element.",
    "Descale the Zephyr kettle every month with citric acid to protect the element.",
]
POLICY = [
    "Office plants are watered every Tuesday by the facilities team.",
    "Visitors park for free in the office garage on weekdays.",
]


def _write(
    engine: Engine,
    embeddings: HashEmbeddings,
    user_id: uuid.UUID,
    source_id: str,
    chunks: list[str],
    metadata: dict[str, Any],
    space_id: uuid.UUID | None = None,
) -> None:
    """Index `chunks` as `user_id` into `space_id` (default: their personal space)."""
    space_id = space_id or personal_space(engine, user_id)
    rows = [
        ChunkRow(
            chunk_id=f"{space_id}-{source_id}-{i}",
            space_id=space_id,
            added_by=user_id,
            text=text,
            embedding=embeddings.embed_query(text),
            source_type="file",
            source_id=source_id,
            chunk_index=i,
            metadata={**metadata, "page": i + 1},
        )
        for i, text in enumerate(chunks)
    ]
    with user_scope(engine, user_id) as connection:
        insert_chunks(connection, rows)


@pytest.fixture
def user_id(
    engine: Engine, make_user: Callable[..., Any], fake_embeddings: HashEmbeddings
) -> uuid.UUID:
    user = make_user("olivia")
    _write(
        engine,
        fake_embeddings,
        user.id,
        "zephyr-manual.pdf",
        KETTLE,
        {"title": "Zephyr kettle manual", "pages": 12},
    )
    _write(engine, fake_embeddings, user.id, "office-policy.md", POLICY, {"title": "Office policy"})
    return uuid.UUID(str(user.id))


def _chain(engine: Engine, retriever: Retriever, llm: Any = None) -> AnswerChain:
    return AnswerChain(retriever=retriever, engine=engine, llm=llm, config=AnswerConfig(k=3))


async def _ask(
    qa: AnswerChain,
    question: str,
    user_id: uuid.UUID,
    spaces: list[uuid.UUID] | None = None,
) -> Answer:
    _, answer = await collect(qa.astream(question, user_id=user_id, spaces=spaces))
    return answer


@pytest.mark.parametrize(
    "question",
    [
        "What is in my knowledge base?",
        "what's in my documents",
        "What documents do I have?",
        "Which files have I uploaded?",
        "Summarise my documents",
        "Summarize everything",
        "Give me a short overview of the main topics in my documents.",
        "List my sources",
        "What are my files about?",
    ],
)
def test_overview_questions_are_recognised(question: str) -> None:
    request = parse_overview(question)
    assert request is not None and request.name is None


@pytest.mark.parametrize(
    "question",
    [
        "What is the warranty of the Zephyr kettle?",
        "How many airplanes of U.S. registry does the AD affect?",
        "What is Rust, according to the Mozilla article?",
        "When are the office plants watered?",
    ],
)
def test_ordinary_questions_are_not_overviews(question: str) -> None:
    assert parse_overview(question) is None


def test_summarise_a_named_file_asks_for_that_source() -> None:
    request = parse_overview("Summarise zephyr-manual.pdf")
    assert request is not None and request.name == "zephyr-manual.pdf"
    about = parse_overview("What is the Zephyr kettle manual about?")
    assert about is not None and about.name == "the Zephyr kettle manual"


async def test_what_is_in_my_knowledge_base_lists_every_source_with_sizes_and_key_sentences(
    engine: Engine, retriever: Retriever, user_id: uuid.UUID
) -> None:
    answer = await _ask(_chain(engine, retriever), "What is in my knowledge base?", user_id)
    text = answer.text
    assert "2 sources (5 chunks)" in text
    assert "Zephyr kettle manual (zephyr-manual.pdf)" in text
    assert "PDF file · 12 pages · 3 chunks · added " in text
    assert "Office policy (office-policy.md)" in text and "MD file · 2 pages · 2 chunks" in text
    # Key sentences are quoted with citations that point at real passages.
    assert answer.sources
    sentences = set(KETTLE) | set(POLICY)
    for source in answer.sources:
        assert source.quotes and set(source.quotes) <= sentences
        for quote in source.quotes:
            assert f"“{quote}” [{source.number}]" in text
            assert quote in source.passage.text
    assert {s.source_id for s in answer.sources} == {"zephyr-manual.pdf", "office-policy.md"}
    with user_scope(engine, user_id) as connection:
        (row,) = list_usage(connection=connection, user_id=user_id)
    assert row.details["overview"] is True


async def test_summarise_a_file_covers_that_source_only(
    engine: Engine, retriever: Retriever, user_id: uuid.UUID
) -> None:
    answer = await _ask(_chain(engine, retriever), "Summarise the zephyr manual", user_id)
    assert "1 source match" in answer.text
    assert "office-policy.md" not in answer.text
    assert {s.source_id for s in answer.sources} == {"zephyr-manual.pdf"}
    assert len([q for s in answer.sources for q in s.quotes]) >= 2


async def test_summarise_something_that_is_no_source_is_an_ordinary_question(
    engine: Engine, retriever: Retriever, user_id: uuid.UUID
) -> None:
    answer = await _ask(_chain(engine, retriever), "Summarise the kettle warranty", user_id)
    assert answer.text.startswith(EXTRACTIVE_LABEL)
    assert "two year warranty" in answer.text


async def test_an_empty_knowledge_base_says_how_to_fill_it(
    engine: Engine, retriever: Retriever, make_user: Callable[..., Any]
) -> None:
    nobody = make_user("nobody")
    answer = await _ask(_chain(engine, retriever), "What is in my knowledge base?", nobody.id)
    assert "Your knowledge base is empty" in answer.text and answer.sources == []


async def test_with_an_llm_the_overview_is_written_from_the_key_sentences(
    engine: Engine, retriever: Retriever, user_id: uuid.UUID
) -> None:
    llm = fake_llm("The manual covers the Zephyr kettle [1]; the policy covers the office [3].")
    answer = await _ask(_chain(engine, retriever, llm), "Summarise my documents", user_id)
    (prompt,) = llm.prompts
    shown = prompt[0].text
    numbered = dict(
        (int(m.group(1)), m.group(2)) for m in re.finditer(r"^\[(\d+)\] (.+)$", shown, re.M)
    )
    assert numbered and set(numbered.values()) <= set(KETTLE) | set(POLICY)
    assert answer.text.startswith("**Your knowledge base has 2 sources")
    assert answer.text.endswith("the policy covers the office [3].")
    assert [s.number for s in answer.sources] == [1, 3]
    for source in answer.sources:
        assert numbered[source.number] in source.quotes


def test_sources_know_their_pages_and_when_they_were_added(
    engine: Engine, user_id: uuid.UUID
) -> None:
    with user_scope(engine, user_id) as connection:
        found = list_sources(connection, space_ids=[personal_space(engine, user_id)])
        sources = {s.source_id: s for s in found}
    assert sources["zephyr-manual.pdf"].pages == 12
    assert sources["office-policy.md"].pages == 2  # the highest page cited
    assert all(s.created_at is not None for s in sources.values())


def test_central_chunks_are_the_nearest_to_the_source_centre(
    engine: Engine, user_id: uuid.UUID
) -> None:
    with user_scope(engine, user_id) as connection:
        key = (personal_space(engine, user_id), "file", "zephyr-manual.pdf")
        chunks = central_chunks(connection, sources=[key], per_source=2)
    assert len(chunks) == 2 and {c.source_id for c in chunks} == {"zephyr-manual.pdf"}
    assert chunks[0].similarity >= chunks[1].similarity
    assert len(chunks[0].centroid) == 384


def _shared_space(engine: Engine, name: str, owner: User, readers: list[uuid.UUID]) -> uuid.UUID:
    with Session(engine) as session:
        space = repo.create_space(session=session, name=name, owner=owner, created_by=owner.id)
        for reader in readers:
            member = session.get(User, reader)
            assert member is not None
            repo.add_member(session=session, space=space, user=member, role="reader", added_by=None)
        session.commit()
        return space.id


async def test_an_overview_lists_only_the_sources_of_the_spaces_asked_over(
    engine: Engine,
    retriever: Retriever,
    make_user: Callable[..., Any],
    fake_embeddings: HashEmbeddings,
    user_id: uuid.UUID,
) -> None:
    bob = make_user("bob")
    team = _shared_space(engine, "Team", bob, readers=[])  # olivia is no member
    garden = _shared_space(engine, "Garden", bob, readers=[user_id])
    diary = ["Bob keeps his diary about the secret lighthouse on Tuesdays."]
    roadmap = ["The team roadmap ships the lighthouse beacon in the third quarter."]
    plan = ["The garden plan puts tomatoes along the sunny south wall."]
    _write(engine, fake_embeddings, bob.id, "bob-diary.md", diary, {})
    _write(engine, fake_embeddings, bob.id, "team-roadmap.md", roadmap, {}, space_id=team)
    _write(engine, fake_embeddings, bob.id, "garden-plan.md", plan, {}, space_id=garden)
    qa = _chain(engine, retriever)

    mine = await _ask(qa, "What is in my knowledge base?", user_id)
    assert "3 sources (6 chunks)" in mine.text
    for listed in ("zephyr-manual.pdf", "office-policy.md", "garden-plan.md"):
        assert listed in mine.text
    assert "space Garden" in mine.text  # a shared space's source says where it is
    for hidden in ("bob-diary.md", "team-roadmap.md", "lighthouse", "Team"):
        assert hidden not in mine.text
    assert {s.source_id for s in mine.sources} <= {
        "zephyr-manual.pdf",
        "office-policy.md",
        "garden-plan.md",
    }
    garden_quote = next(s for s in mine.sources if s.source_id == "garden-plan.md")
    assert garden_quote.passage.metadata["space_name"] == "Garden"

    # Narrowed to one space: that space only; to a space she is no member of: nothing.
    narrowed = await _ask(qa, "What is in my knowledge base?", user_id, spaces=[garden])
    assert "1 source (1 chunks)" in narrowed.text and "garden-plan.md" in narrowed.text
    assert "zephyr-manual.pdf" not in narrowed.text
    outside = await _ask(qa, "What is in my knowledge base?", user_id, spaces=[team])
    assert "Your knowledge base is empty" in outside.text and outside.sources == []
    # Naming another member's source does not summarise it either.
    named = await _ask(qa, "Summarise team-roadmap.md", user_id)
    assert "team-roadmap" not in named.text and "lighthouse" not in named.text
    assert all(s.source_id != "team-roadmap.md" for s in named.sources)

    # Bob's own overview is his: diary, roadmap, garden plan, none of Olivia's.
    bobs = await _ask(qa, "What is in my knowledge base?", bob.id)
    assert "3 sources (3 chunks)" in bobs.text
    for listed in ("bob-diary.md", "team-roadmap.md", "garden-plan.md"):
        assert listed in bobs.text
    assert "zephyr-manual.pdf" not in bobs.text and "office-policy.md" not in bobs.text
