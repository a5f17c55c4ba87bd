"""Overview questions ("what is in my knowledge base?") answered from the index."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from db.chunks import ChunkRow, central_chunks, insert_chunks, list_sources
from db.scoped import user_scope
from db.usage import list_usage
from retrieval.chain import Answer, AnswerChain, AnswerConfig
from retrieval.overview import parse_overview
from retrieval.prompts import EXTRACTIVE_LABEL
from retrieval.retriever import Retriever
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
) -> None:
    rows = [
        ChunkRow(
            chunk_id=f"{user_id}-{source_id}-{i}",
            user_id=user_id,
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


async def _ask(qa: AnswerChain, question: str, user_id: uuid.UUID) -> Answer:
    _, answer = await collect(qa.astream(question, user_id=user_id))
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
        sources = {s.source_id: s for s in list_sources(connection, user_id=user_id)}
    assert sources["zephyr-manual.pdf"].pages == 12
    assert sources["office-policy.md"].pages == 2  # the highest page cited
    assert all(s.created_at is not None for s in sources.values())


def test_central_chunks_are_the_nearest_to_the_source_centre(
    engine: Engine, user_id: uuid.UUID
) -> None:
    with user_scope(engine, user_id) as connection:
        chunks = central_chunks(
            connection, user_id=user_id, sources=[("file", "zephyr-manual.pdf")], per_source=2
        )
    assert len(chunks) == 2 and {c.source_id for c in chunks} == {"zephyr-manual.pdf"}
    assert chunks[0].similarity >= chunks[1].similarity
    assert len(chunks[0].centroid) == 384
