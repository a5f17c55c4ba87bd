"""The answer chain with LangChain's fake chat models over a real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatResult
from langchain_core.runnables import RunnableBranch, RunnableSequence
from sqlalchemy.engine import Engine

from db.chunks import ChunkRow, insert_chunks
from db.scoped import user_scope
from db.usage import list_usage
from retrieval.chain import Answer, AnswerChain, AnswerConfig, cited_numbers
from retrieval.extractive import looks_like_follow_up
from retrieval.prompts import DONT_KNOW, EXTRACTIVE_LABEL, format_passages
from retrieval.retriever import Retriever
from tests.conftest import personal_space
from tests.fakes import HashEmbeddings
from tests.retrieval_fixtures import add_passages

PASSAGES = [
    ("Kettle manual", "The Zephyr kettle has a two year warranty covering the heating element."),
    ("Toaster manual", "The Aurora toaster browns bread evenly with seven heat settings."),
    ("Office policy", "Office plants are watered every Tuesday by the facilities team."),
]


class RecordingFakeChatModel(GenericFakeChatModel):
    """GenericFakeChatModel that remembers the messages of every call (its `_stream`
    goes through `_generate` too)."""

    prompts: list[list[BaseMessage]] = []  # noqa: RUF012 (pydantic field, copied per instance)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.prompts.append(list(messages))
        return super()._generate(messages, stop, run_manager, **kwargs)


def fake_llm(*replies: str) -> RecordingFakeChatModel:
    return RecordingFakeChatModel(
        messages=iter([AIMessage(content=r) for r in replies]), prompts=[]
    )


@pytest.fixture
def user_id(
    engine: Engine, make_user: Callable[..., Any], fake_embeddings: HashEmbeddings
) -> uuid.UUID:
    user = make_user("alice")
    add_passages(engine, fake_embeddings, user.id, PASSAGES)
    return uuid.UUID(str(user.id))


def chain(engine: Engine, retriever: Retriever, llm: Any) -> AnswerChain:
    return AnswerChain(retriever=retriever, engine=engine, llm=llm, config=AnswerConfig(k=3))


async def collect(stream: Any) -> tuple[list[str], Answer]:
    pieces: list[str] = []
    final = None
    async for item in stream:
        if isinstance(item, Answer):
            final = item
        else:
            pieces.append(item)
    assert final is not None
    return pieces, final


async def test_follow_up_is_rewritten_with_history_and_the_rewrite_is_searched(
    engine: Engine, retriever: Retriever, user_id: uuid.UUID
) -> None:
    llm = fake_llm(
        "How long is the warranty of the Zephyr kettle?",
        "Two years, for the heating element [1].",
    )
    history = [
        HumanMessage("Which kettle do we sell?"),
        AIMessage("The Zephyr kettle [1]."),
    ]
    _, answer = await collect(
        chain(engine, retriever, llm).astream(
            "How long is its warranty?", user_id=user_id, history=history
        )
    )
    assert answer.standalone_question == "How long is the warranty of the Zephyr kettle?"
    condense_call, answer_call = llm.prompts
    assert "Which kettle do we sell?" in " ".join(m.text for m in condense_call)
    # The answer prompt was built from the rewritten question and its passages.
    assert answer_call[-1].text == "How long is the warranty of the Zephyr kettle?"
    assert "[1] Kettle manual" in answer_call[0].text
    assert [s.title for s in answer.sources] == ["Kettle manual"]


async def test_question_without_history_is_not_rewritten(
    engine: Engine, retriever: Retriever, user_id: uuid.UUID
) -> None:
    llm = fake_llm("The Aurora toaster has seven heat settings [1].")
    _, answer = await collect(
        chain(engine, retriever, llm).astream(
            "How many heat settings does the Aurora toaster have?", user_id=user_id
        )
    )
    assert len(llm.prompts) == 1
    assert answer.standalone_question == "How many heat settings does the Aurora toaster have?"


async def test_sources_are_exactly_the_passages_cited_with_their_numbers(
    engine: Engine, retriever: Retriever, user_id: uuid.UUID
) -> None:
    llm = fake_llm("Plants are watered on Tuesday [2]; the kettle warranty is two years [1][2].")
    question = "When are the office plants watered and what is the kettle warranty?"
    _, answer = await collect(chain(engine, retriever, llm).astream(question, user_id=user_id))
    shown = llm.prompts[0][0].text
    by_number = {s.number: s for s in answer.sources}
    assert sorted(by_number) == [1, 2]
    for number, source in by_number.items():
        # The passage numbered n in the prompt is Source n, with its own text as snippet.
        assert f"[{number}] {source.title}\n{source.snippet}" in shown
    assert {s.title for s in answer.sources} <= {"Kettle manual", "Office policy"}
    assert all(s.url and s.url.startswith("https://example.test/") for s in answer.sources)
    assert all(s.page is not None for s in answer.sources)


async def test_unrelated_question_answers_dont_know_without_calling_the_llm(
    engine: Engine, retriever: Retriever, user_id: uuid.UUID
) -> None:
    llm = fake_llm("should not be used")
    pieces, answer = await collect(
        chain(engine, retriever, llm).astream("quantum chromodynamics lattice", user_id=user_id)
    )
    assert answer.text == DONT_KNOW
    assert "".join(pieces) == DONT_KNOW
    assert answer.sources == []
    assert llm.prompts == []


async def test_user_without_documents_gets_dont_know(
    engine: Engine, retriever: Retriever, make_user: Callable[..., Any]
) -> None:
    bob = make_user("bob")
    _, answer = await collect(
        chain(engine, retriever, fake_llm("x")).astream("Zephyr kettle warranty", user_id=bob.id)
    )
    assert answer.text == DONT_KNOW and answer.sources == []


async def test_model_saying_it_does_not_know_cites_nothing(
    engine: Engine, retriever: Retriever, user_id: uuid.UUID
) -> None:
    llm = fake_llm(f"{DONT_KNOW} Passage [1] is about kettles.")
    _, answer = await collect(
        chain(engine, retriever, llm).astream("Zephyr kettle colour?", user_id=user_id)
    )
    assert answer.sources == []


async def test_answer_streams_in_several_chunks(
    engine: Engine, retriever: Retriever, user_id: uuid.UUID
) -> None:
    reply = "The Zephyr kettle is covered for two years [1]."
    pieces, answer = await collect(
        chain(engine, retriever, fake_llm(reply)).astream("Zephyr kettle warranty", user_id=user_id)
    )
    assert len(pieces) > 3
    assert "".join(pieces) == reply == answer.text
    assert answer.model is not None


async def test_each_question_writes_one_usage_row(
    engine: Engine, retriever: Retriever, user_id: uuid.UUID
) -> None:
    qa = chain(engine, retriever, fake_llm("Two years [1].", "Seven [2]."))
    await qa.ainvoke("Zephyr kettle warranty", user_id=user_id, mode="vector", k=2)
    await qa.ainvoke("Aurora toaster settings", user_id=user_id)
    with user_scope(engine, user_id) as connection:
        rows = list_usage(connection=connection, user_id=user_id, action="ask")
    assert len(rows) == 2
    latest, first = rows
    assert (first.mode, first.k, first.sources_count) == ("vector", 2, 1)
    assert (latest.mode, latest.k) == ("hybrid", 3)
    assert first.retrieval_ms is not None and first.retrieval_ms > 0
    assert first.generation_ms is not None and first.generation_ms >= 0
    assert first.model == "GenericFakeChatModel" or first.model


async def test_without_llm_the_answer_is_extractive_labelled_and_cited(
    engine: Engine, retriever: Retriever, user_id: uuid.UUID
) -> None:
    pieces, answer = await collect(
        chain(engine, retriever, None).astream("Zephyr kettle warranty", user_id=user_id)
    )
    assert answer.model is None
    assert answer.text.startswith(EXTRACTIVE_LABEL)
    assert len(pieces) >= 2
    assert "two year warranty" in answer.text
    numbers = cited_numbers(answer.text)
    assert numbers and [s.number for s in answer.sources] == numbers
    kettle = next(s for s in answer.sources if s.title == "Kettle manual")
    assert f"[{kettle.number}]" in answer.text


async def test_extractive_follow_up_searches_with_the_previous_question(
    engine: Engine, retriever: Retriever, user_id: uuid.UUID
) -> None:
    history = [HumanMessage("Tell me about the Aurora toaster"), AIMessage("...")]
    _, answer = await collect(
        chain(engine, retriever, None).astream(
            "and how many heat settings?", user_id=user_id, history=history
        )
    )
    assert answer.standalone_question == (
        "Tell me about the Aurora toaster and how many heat settings?"
    )
    assert answer.sources[0].title == "Toaster manual"


def test_the_chain_is_one_runnable_routing_overviews_then_condense_retrieve_answer(
    engine: Engine, retriever: Retriever
) -> None:
    for llm in (fake_llm(), None):
        runnable = chain(engine, retriever, llm).runnable
        assert isinstance(runnable, RunnableSequence)
        route, branch = runnable.steps
        assert isinstance(branch, RunnableBranch)
        assert "overview" in [node.name for node in route.get_graph().nodes.values()]
        (_, from_index), question = branch.branches[0], branch.default
        names = [node.name for node in question.get_graph().nodes.values()]
        steps = [name for name in names if name in ("condense", "retrieve", "answer")]
        assert steps == ["condense", "retrieve", "answer"]
        index_steps = [node.name for node in from_index.get_graph().nodes.values()]
        assert "central" in index_steps and "key_sentences" in index_steps


async def test_the_runnable_alone_returns_the_rewrite_the_passages_and_the_answer(
    engine: Engine, retriever: Retriever, user_id: uuid.UUID
) -> None:
    llm = fake_llm("How long is the warranty of the Zephyr kettle?", "Two years [1].")
    qa = chain(engine, retriever, llm)
    history = [HumanMessage("Which kettle do we sell?"), AIMessage("The Zephyr kettle [1].")]
    result = await qa.runnable.ainvoke(
        {"question": "How long is its warranty?", "history": history, "user_id": user_id}
    )
    assert result["standalone"] == "How long is the warranty of the Zephyr kettle?"
    assert len(result["passages"]) == 3  # the chain's default k
    assert result["passages"][0].title == "Kettle manual"
    assert result["answer"] == "Two years [1]."
    # Logging usage is the AnswerChain's job around the runnable, not the runnable's.
    with user_scope(engine, user_id) as connection:
        assert list_usage(connection=connection, user_id=user_id) == []


async def test_the_extractive_runnable_alone_returns_the_passages_and_labelled_quotes(
    engine: Engine, retriever: Retriever, user_id: uuid.UUID
) -> None:
    runnable = chain(engine, retriever, None).runnable
    result = await runnable.ainvoke(
        {"question": "Zephyr kettle warranty", "user_id": user_id, "mode": "keyword", "k": 1}
    )
    assert result["standalone"] == "Zephyr kettle warranty"
    assert [p.title for p in result["passages"]] == ["Kettle manual"]
    assert result["answer"].startswith(EXTRACTIVE_LABEL)
    assert "two year warranty" in result["answer"] and "[1]" in result["answer"]


def test_cited_numbers_reads_every_citation_style() -> None:
    assert cited_numbers("a [2] b [1][3] c [1, 4] d [12]") == [2, 1, 3, 4, 12]
    assert cited_numbers("no citations, [x] or [ ]") == []


def test_chunks_type_is_ai_message_chunk() -> None:
    # The chain reads `.text` and `usage_metadata` off the model's stream chunks.
    chunk = AIMessageChunk(content="hi")
    assert chunk.text == "hi"


def test_a_passages_own_reference_numbers_are_not_shown_as_citation_markers() -> None:
    block = format_passages([(1, "Paper", "Shown before [2, 3] and in [14].")])
    assert block == "[1] Paper\nShown before (2, 3) and in (14)."


async def test_extractive_mode_searches_a_standalone_question_on_its_own(
    engine: Engine, retriever: Retriever, user_id: uuid.UUID
) -> None:
    history = [HumanMessage("Tell me about the Aurora toaster"), AIMessage("...")]
    question = "When are the office plants watered by the facilities team?"
    _, answer = await collect(
        chain(engine, retriever, None).astream(question, user_id=user_id, history=history)
    )
    assert answer.standalone_question == question
    assert answer.sources[0].title == "Office policy"


def test_follow_up_detection() -> None:
    assert looks_like_follow_up("and the price?")
    assert looks_like_follow_up("What about its warranty")
    assert looks_like_follow_up("Why?")
    assert not looks_like_follow_up("How many heat settings does the Aurora toaster have?")
    assert looks_like_follow_up("How long does its battery last?")
    # A pronoun late in a long question points inside it: searching it together with
    # the previous question quoted the previous topic first (found in a long chat).
    assert not looks_like_follow_up(
        "Who fixes a Chapter 13 standing trustee's percentage fee, and can the trustee"
        " negotiate it?"
    )
    assert not looks_like_follow_up(
        "Which existing airworthiness directive would this proposed rule supersede?"
    )


async def test_extractive_citations_carry_the_sentences_quoted_from_their_passage(
    engine: Engine, retriever: Retriever, user_id: uuid.UUID
) -> None:
    _, answer = await collect(
        chain(engine, retriever, None).astream("Zephyr kettle warranty", user_id=user_id)
    )
    assert answer.sources and all(s.quotes for s in answer.sources)
    for source in answer.sources:
        for quote in source.quotes:
            assert quote in " ".join(source.passage.text.split())
            assert f"“{quote}” [{source.number}]" in answer.text
    kettle = next(s for s in answer.sources if s.title == "Kettle manual")
    assert kettle.quotes == (PASSAGES[0][1],)


async def test_llm_citations_carry_the_passage_sentences_that_support_them(
    engine: Engine, retriever: Retriever, user_id: uuid.UUID
) -> None:
    llm = fake_llm("The heating element has a two year warranty. [1]")
    _, answer = await collect(
        chain(engine, retriever, llm).astream("Zephyr kettle warranty", user_id=user_id)
    )
    (kettle,) = answer.sources
    assert kettle.quotes == (PASSAGES[0][1],)


async def test_a_sentence_split_between_chunks_is_quoted_whole_and_shown_in_its_passage(
    engine: Engine,
    retriever: Retriever,
    make_user: Callable[..., Any],
    fake_embeddings: HashEmbeddings,
) -> None:
    user = make_user("carol")
    first = (
        "The manual starts here. Every Zephyr kettle sold in Europe carries, according "
        "to the sales terms, a warranty"
    )
    second = (
        "according to the sales terms, a warranty of exactly two years on the heating "
        "element. Descaling is advised monthly."
    )
    rows = [
        ChunkRow(
            chunk_id=f"manual-{i}",
            space_id=personal_space(engine, user.id),
            added_by=user.id,
            text=text,
            embedding=fake_embeddings.embed_query(text),
            source_type="file",
            source_id="manual.pdf",
            chunk_index=i,
            metadata={"title": "Manual", "page": 1},
        )
        for i, text in enumerate([first, second])
    ]
    with user_scope(engine, user.id) as connection:
        insert_chunks(connection, rows)
    qa = chain(engine, retriever, None)
    _, answer = await collect(
        qa.astream("warranty of exactly two years heating element", user_id=user.id)
    )
    whole = (
        "Every Zephyr kettle sold in Europe carries, according to the sales terms, a "
        "warranty of exactly two years on the heating element."
    )
    assert f"“{whole}”" in answer.text
    cited = next(s for s in answer.sources if whole in s.quotes)
    assert whole in " ".join(cited.passage.text.split())


def test_an_llms_word_for_word_quote_is_what_its_citation_quotes() -> None:
    from retrieval.chain import verbatim_quotes
    from retrieval.passages import Passage

    passage = Passage(
        chunk_id="c",
        text="Pickers are paid by the crate,\nand every crate is weighed.",
        source_type="file",
        source_id="orchard.md",
        source_url=None,
        chunk_index=0,
        score=1.0,
    )
    answer = 'It says “Pickers are paid by the crate.” [1] and "crates fly" [1], “made up” [2].'
    # The closing full stop is the answer's, the invented quote is no quote of [1].
    assert verbatim_quotes(answer, {1: passage}) == {1: ("Pickers are paid by the crate",)}
