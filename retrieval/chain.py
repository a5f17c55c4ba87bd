"""The answer chain: standalone question -> retrieve -> cited, streamed answer.

The steps are LCEL runnables (`prompt | llm`); `AnswerChain.astream` runs them in
order because the UI needs the answer tokens as they come and then one final
`Answer` with the sources the text actually cites.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from sqlalchemy.engine import Engine

from db.scoped import user_scope
from db.usage import log_usage
from retrieval.extractive import extractive_answer
from retrieval.llm import LlmUnavailable, describe_model
from retrieval.prompts import ANSWER_PROMPT, CONDENSE_PROMPT, DONT_KNOW, format_passages
from retrieval.retriever import Passage, check_mode, search_documents

__all__ = ["Answer", "AnswerChain", "Source", "build_answer_chain", "cited_numbers"]

SNIPPET_CHARS = 300
# "[1]", "[2][3]", "[1, 3]", "[1,2]"
_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


@dataclass(frozen=True)
class Source:
    """A passage cited in the answer; `number` is the [n] used in the text."""

    number: int
    title: str
    source_type: str
    source_id: str
    url: str | None
    page: int | None
    snippet: str
    score: float


@dataclass(frozen=True)
class Answer:
    text: str
    sources: list[Source]
    standalone_question: str
    model: str | None  # None = extractive mode (no LLM configured)


def cited_numbers(text: str) -> list[int]:
    """The citation numbers in `text`, in order of first appearance."""
    seen: list[int] = []
    for match in _CITATION.finditer(text):
        for part in match.group(1).split(","):
            number = int(part)
            if number not in seen:
                seen.append(number)
    return seen


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " …"


def _source(number: int, passage: Passage) -> Source:
    return Source(
        number=number,
        title=passage.title or passage.source_id,
        source_type=passage.source_type,
        source_id=passage.source_id,
        url=passage.source_url,
        page=passage.page,
        snippet=snippet(passage.text),
        score=passage.score,
    )


_PRONOUNS = frozenset(
    [
        "it",
        "its",
        "they",
        "them",
        "their",
        "this",
        "these",
        "those",
        "he",
        "him",
        "his",
        "she",
        "her",
    ]
)
_FOLLOW_UP_OPENINGS = ("and ", "also ", "what about ", "how about ", "but ")
FOLLOW_UP_MAX_WORDS = 3


def looks_like_follow_up(question: str) -> bool:
    """Very short, opening with "and/what about...", or leaning on a pronoun."""
    text = question.lower().strip()
    words = re.findall(r"[a-z0-9']+", text)
    return (
        len(words) <= FOLLOW_UP_MAX_WORDS
        or text.startswith(_FOLLOW_UP_OPENINGS)
        or bool(_PRONOUNS & set(words))
    )


def _last_user_question(history: Sequence[BaseMessage]) -> str | None:
    for message in reversed(history):
        if isinstance(message, HumanMessage):
            return message.text.strip() or None
    return None


class AnswerChain:
    """Answers one user's questions from their documents; see `build_answer_chain`."""

    def __init__(
        self,
        *,
        engine: Engine,
        embeddings: Embeddings,
        llm: BaseChatModel | None,
        default_mode: str = "hybrid",
        default_k: int = 5,
        score_threshold: float = 0.25,
    ) -> None:
        self.engine = engine
        self.embeddings = embeddings
        self.llm = llm
        self.default_mode = check_mode(default_mode)
        self.default_k = default_k
        self.score_threshold = score_threshold
        self.model_name = describe_model(llm)
        if llm is not None:
            self.condense = CONDENSE_PROMPT | llm | StrOutputParser()
            self.answer = ANSWER_PROMPT | llm

    async def standalone_question(self, question: str, history: Sequence[BaseMessage]) -> str:
        """The follow-up rewritten to stand alone (the question itself without history)."""
        question = question.strip()
        if not history:
            return question
        if self.llm is None:
            # No model to resolve references: a question that looks like a follow-up
            # ("and its warranty?") is searched with the previous question's words too.
            previous = _last_user_question(history)
            if previous and previous != question and looks_like_follow_up(question):
                return f"{previous} {question}"
            return question
        try:
            rewritten = await self.condense.ainvoke(
                {"history": list(history), "question": question}
            )
        except Exception as exc:  # provider errors come in many types
            raise LlmUnavailable.wrap(self.model_name, exc) from exc
        rewritten = rewritten.strip().strip('"').strip()
        return rewritten or question

    async def astream(
        self,
        question: str,
        *,
        user_id: uuid.UUID,
        history: Sequence[BaseMessage] = (),
        mode: str | None = None,
        k: int | None = None,
    ) -> AsyncIterator[str | Answer]:
        """Yield the answer's text as it streams, then one final `Answer`."""
        mode = check_mode(mode or self.default_mode)
        k = k or self.default_k
        standalone = await self.standalone_question(question, history)

        started = time.perf_counter()
        passages = await asyncio.to_thread(
            search_documents,
            standalone,
            user_id,
            k,
            engine=self.engine,
            embeddings=self.embeddings,
            mode=mode,
        )
        retrieval_ms = (time.perf_counter() - started) * 1000

        started = time.perf_counter()
        tokens_used: int | None = None
        numbered = list(enumerate(passages, start=1))
        if not self._relevant(passages):
            text = DONT_KNOW
            yield text
        else:
            parts: list[str] = []
            if self.llm is None:
                pieces = await asyncio.to_thread(
                    lambda: list(
                        extractive_answer(
                            standalone,
                            [(n, p.text) for n, p in numbered],
                            embeddings=self.embeddings,
                        )
                    )
                )
                for piece in pieces:
                    parts.append(piece)
                    yield piece
            else:
                inputs = {
                    "question": standalone,
                    "passages": format_passages(
                        [(n, p.title or p.source_id, p.text) for n, p in numbered]
                    ),
                }
                try:
                    async for chunk in self.answer.astream(inputs):
                        usage = getattr(chunk, "usage_metadata", None)
                        if usage:
                            tokens_used = (tokens_used or 0) + int(usage.get("total_tokens", 0))
                        piece = chunk.text
                        if piece:
                            parts.append(piece)
                            yield piece
                except Exception as exc:  # provider errors come in many types
                    raise LlmUnavailable.wrap(self.model_name, exc) from exc
            text = "".join(parts)
        generation_ms = (time.perf_counter() - started) * 1000

        by_number = dict(numbered)
        sources = [
            _source(n, by_number[n])
            for n in cited_numbers(text)
            if n in by_number and not text.startswith(DONT_KNOW)
        ]
        await asyncio.to_thread(
            self._log,
            user_id=user_id,
            mode=mode,
            k=k,
            retrieval_ms=retrieval_ms,
            generation_ms=generation_ms,
            sources_count=len(sources),
            tokens_used=tokens_used,
            rewritten=standalone != question.strip(),
        )
        yield Answer(
            text=text, sources=sources, standalone_question=standalone, model=self.model_name
        )

    async def ainvoke(
        self,
        question: str,
        *,
        user_id: uuid.UUID,
        history: Sequence[BaseMessage] = (),
        mode: str | None = None,
        k: int | None = None,
    ) -> Answer:
        """The final `Answer` without the streamed pieces."""
        final: Answer | None = None
        async for item in self.astream(question, user_id=user_id, history=history, mode=mode, k=k):
            if isinstance(item, Answer):
                final = item
        assert final is not None
        return final

    def _relevant(self, passages: Sequence[Passage]) -> bool:
        """Anything retrieved that is close enough to the question to answer from.

        Keyword mode computes no similarity: a full-text match is its own evidence.
        """
        if not passages:
            return False
        similarities = [p.similarity for p in passages if p.similarity is not None]
        return not similarities or max(similarities) >= self.score_threshold

    def _log(
        self,
        *,
        user_id: uuid.UUID,
        mode: str,
        k: int,
        retrieval_ms: float,
        generation_ms: float,
        sources_count: int,
        tokens_used: int | None,
        rewritten: bool,
    ) -> None:
        with user_scope(self.engine, user_id) as connection:
            log_usage(
                connection=connection,
                user_id=user_id,
                action="ask",
                mode=mode,
                k=k,
                retrieval_ms=round(retrieval_ms, 2),
                generation_ms=round(generation_ms, 2),
                sources_count=sources_count,
                model=self.model_name,
                tokens_used=tokens_used,
                details={"rewritten": rewritten},
            )


def build_answer_chain(
    *,
    engine: Engine,
    embeddings: Embeddings,
    llm: BaseChatModel | None,
    default_mode: str = "hybrid",
    default_k: int = 5,
    score_threshold: float = 0.25,
) -> AnswerChain:
    """The chain the UI and `kb ask` use; `llm=None` answers extractively."""
    return AnswerChain(
        engine=engine,
        embeddings=embeddings,
        llm=llm,
        default_mode=default_mode,
        default_k=default_k,
        score_threshold=score_threshold,
    )
