"""The answer chain: standalone question -> retrieve -> cited, streamed answer.

`AnswerChain` builds the pipeline once, as one LCEL runnable over a dict:

    {question, history, user_id, spaces, mode, k}
      .assign(overview=overview)         # "what is in my knowledge base?" -> the index
      | branch(
          overview is not None:          # answered from the index of the readable spaces
            .assign(standalone, passages=central chunks, quotes=key sentences, answer)
          otherwise:
            .assign(standalone=condense)     # a follow-up rewritten to stand alone
            .assign(query_vector=embed)      # once, for the search and the quotes
            .assign(passages=retrieve)       # top-k passages of the readable spaces,
                                             #   edge sentences completed
            .assign(quotes=pick_sentences)   # extractive mode only
            .assign(answer=answer)           # "don't know" | LLM answer | quotes
        )

`AnswerChain.astream` streams that runnable (the "answer" key arrives token by
token) and then builds the one final `Answer` with the passages the text actually
cites, and writes the usage row: the UI needs both the tokens and the sources.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import LLMResult
from langchain_core.runnables import (
    Runnable,
    RunnableBranch,
    RunnableConfig,
    RunnableLambda,
    RunnablePassthrough,
    RunnableSerializable,
)
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from db.errors import KbError
from db.scoped import user_scope
from db.usage import log_usage
from retrieval.extractive import (
    QuotedSentence,
    SentenceVectors,
    pick_sentences,
    render_quotes,
    searched_without_model,
    supporting_sentences,
    terms,
)
from retrieval.llm import LlmUnavailable, describe_model
from retrieval.overview import (
    Overview,
    load_overview,
    overview_passages_text,
    parse_overview,
    render_overview,
    render_source_list,
)
from retrieval.passages import Passage, SearchMode, check_mode
from retrieval.prompts import (
    ANSWER_PROMPT,
    CONDENSE_PROMPT,
    DONT_KNOW,
    OVERVIEW_PROMPT,
    format_passages,
)
from retrieval.retriever import Retriever
from retrieval.sentences import locate_quote, sentence_spans
from retrieval.stitching import complete_sentences

__all__ = ["Answer", "AnswerChain", "AnswerConfig", "AnswerTimings", "Citation", "cited_numbers"]

SNIPPET_CHARS = 300
# "[1]", "[2][3]", "[1, 3]", "[1,2]"
_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
# Words an LLM put in quotation marks, and the citations right after them:
# “…” [1] or "…" [1][2] or “…” [1, 2].
_QUOTED = re.compile(r"(?:“([^”]+)”|\"([^\"\n]+)\")\s*((?:\[\d+(?:\s*,\s*\d+)*\]\s*)+)")
# A quote may end a sentence where the passage's goes on: "… by the crate." of "… crate, and".
_QUOTE_END = ".!?;:,…\"'”’ "
# Marks the answering model's runs, so its token usage is told apart from the rewrite's.
ANSWER_TAG = "kb:answer"
_Step = TypeVar("_Step", bound=RunnableSerializable[Any, Any])


@dataclass(frozen=True)
class AnswerConfig:
    """How questions are answered unless a request says otherwise."""

    mode: SearchMode = "hybrid"
    k: int = 5
    # Minimum cosine similarity of the best passage; below it: "I don't know".
    score_threshold: float = 0.25
    # Extractive mode ranks the sentences of this many passages (at least k) and cites
    # those it quotes: the best sentence may sit in a passage ranked just below k.
    quote_pool: int = 10


@dataclass(frozen=True)
class Citation:
    """A passage cited in the answer; `number` is the [n] used in the text.

    `quotes` are the passage's words the answer rests on, best first, and what the
    citation panel highlights: in extractive mode the sentences quoted under [n]; in
    an overview the key sentences; with an LLM, what it quoted word for word before
    [n] (“…” [n]) when the passage holds it, else the passage sentences sharing the
    most words with the answer's sentences that cite [n] (empty when none is close).
    Each is whitespace-normalised:
    `q in " ".join(passage.text.split())` holds, and
    `retrieval.sentences.locate_quote(passage.text, q)` gives its span in the raw text.
    """

    number: int
    passage: Passage
    quotes: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return self.passage.title or self.passage.source_id

    @property
    def source_type(self) -> str:
        return self.passage.source_type

    @property
    def source_id(self) -> str:
        return self.passage.source_id

    @property
    def url(self) -> str | None:
        return self.passage.source_url

    @property
    def page(self) -> int | None:
        return self.passage.page

    @property
    def snippet(self) -> str:
        return snippet(self.passage.text)

    @property
    def location(self) -> str | None:
        return self.passage.location


@dataclass(frozen=True)
class AnswerTimings:
    """Where one answer's time went, in seconds from the question: the search alone,
    until the first piece of text, and the whole answer (the metrics read these)."""

    retrieval: float
    first_token: float | None  # None: no text at all
    total: float


@dataclass(frozen=True)
class Answer:
    text: str
    sources: list[Citation]
    standalone_question: str
    model: str | None  # None = extractive mode (no LLM configured)
    mode: str | None = None  # the search mode used
    timings: AnswerTimings | None = None


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


# --- the steps; each takes the chain's dict (see the module docstring) -------------


def _no_history(inputs: dict[str, Any]) -> bool:
    return not inputs.get("history")


def _question_as_is(inputs: dict[str, Any]) -> str:
    return str(inputs["question"]).strip()


def _rewrite_or_question(inputs: dict[str, Any]) -> str:
    rewritten = str(inputs["rewritten"]).strip().strip('"').strip()
    return rewritten or _question_as_is(inputs)


def _with_previous_question(inputs: dict[str, Any]) -> str:
    return searched_without_model(_question_as_is(inputs), inputs["history"])


def _numbered(inputs: dict[str, Any]) -> list[tuple[int, Passage]]:
    return list(enumerate(inputs["passages"], start=1))


def _answer_prompt_inputs(inputs: dict[str, Any]) -> dict[str, str]:
    return {
        "question": inputs["standalone"],
        "passages": format_passages(
            [(n, p.title or p.source_id, p.text) for n, p in _numbered(inputs)]
        ),
    }


def _dont_know(inputs: dict[str, Any]) -> str:
    return DONT_KNOW


def _has_overview(inputs: dict[str, Any]) -> bool:
    return inputs.get("overview") is not None


def _quotes_by_number(quotes: Sequence[QuotedSentence]) -> dict[int, tuple[str, ...]]:
    grouped: dict[int, list[str]] = {}
    for quote in quotes:
        grouped.setdefault(quote.number, []).append(quote.text)
    return {n: tuple(texts) for n, texts in grouped.items()}


def verbatim_quotes(text: str, passages: dict[int, Passage]) -> dict[int, tuple[str, ...]]:
    """For an LLM answer: per cited number, the words the answer put in quotation marks
    before [n] that passage n really contains (whitespace-normalised, as in the passage)."""
    found: dict[int, list[str]] = {}
    for match in _QUOTED.finditer(text):
        quote = " ".join((match.group(1) or match.group(2) or "").split())
        for number in cited_numbers(match.group(3)):
            passage = passages.get(number)
            if passage is None or not quote:
                continue
            for candidate in (quote, quote.rstrip(_QUOTE_END)):
                if candidate and locate_quote(passage.text, candidate):
                    texts = found.setdefault(number, [])
                    if candidate not in texts:
                        texts.append(candidate)
                    break
    return {n: tuple(texts) for n, texts in found.items()}


def supporting_quotes(text: str, passages: dict[int, Passage]) -> dict[int, tuple[str, ...]]:
    """For an LLM answer: per cited number, the passage sentences closest in words to
    the answer's sentences that cite it (a citation standing alone after a full stop,
    "... two years. [1]", belongs to the sentence before it)."""
    statements: dict[int, list[str]] = {}
    previous = ""
    for sentence in sentence_spans(text):
        body = _CITATION.sub(" ", sentence.text).strip()
        if not terms(body):
            body = previous
        for number in cited_numbers(sentence.text):
            statements.setdefault(number, []).append(body)
        previous = body
    return {
        n: supporting_sentences(" ".join(parts), passages[n].text)
        for n, parts in statements.items()
        if n in passages
    }


def _named(runnable: _Step, name: str) -> _Step:
    runnable.name = name  # shown by get_graph() and as the run's name in traces
    return runnable


class _ModelCalls(BaseCallbackHandler):
    """What the chat model did for one question: the answer's tokens, and whether a
    call failed (so its error, of whatever provider type, becomes `LlmUnavailable`)."""

    run_inline = True

    def __init__(self) -> None:
        self.answer_tokens: int | None = None
        self.failed = False

    def on_llm_end(
        self, response: LLMResult, *, tags: list[str] | None = None, **kwargs: Any
    ) -> None:
        if ANSWER_TAG not in (tags or ()):
            return
        for generations in response.generations:
            for generation in generations:
                usage = getattr(getattr(generation, "message", None), "usage_metadata", None)
                if usage:
                    total = int(usage.get("total_tokens", 0))
                    self.answer_tokens = (self.answer_tokens or 0) + total

    def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        self.failed = True


class AnswerChain:
    """Answers a user's questions from their documents; `llm=None` answers extractively.

    `runnable` is the whole pipeline as one LCEL runnable. Input: `{"question",
    "user_id", "spaces" (ids to search, None = every space the user can read),
    "history" (messages, may be empty), "mode", "k"}` (mode and k fall back to the
    config). Output: the input plus `standalone` (the searched question),
    `passages` (the `Passage`s numbered [1].. in the prompt) and `answer` (the text,
    streamed in pieces by `astream`). `engine` is where usage rows are written.
    """

    def __init__(
        self,
        *,
        retriever: Retriever,
        engine: Engine,
        llm: BaseChatModel | None,
        config: AnswerConfig | None = None,
    ) -> None:
        self.retriever = retriever
        self.engine = engine
        self.llm = llm
        self.config = config or AnswerConfig()
        check_mode(self.config.mode)
        self.model_name = describe_model(llm)
        # Sentence vectors are cached across questions (and users): overlapping chunks
        # and popular passages repeat the same sentences.
        self.vectors = SentenceVectors(retriever.embeddings)
        self.runnable = self._pipeline()

    def _pipeline(self) -> Runnable[dict[str, Any], dict[str, Any]]:
        config, llm, embeddings = self.config, self.llm, self.retriever.embeddings
        vectors = self.vectors
        # A plain flag: a step whose code refers to the model shows as the model in graphs.
        extractive = llm is None

        async def overview(inputs: dict[str, Any]) -> Overview | None:
            request = parse_overview(_question_as_is(inputs))
            if request is None:
                return None
            # The spaces this question's search would read: an overview lists their
            # sources and no others.
            user_id = inputs["user_id"]

            async def read(reader: AsyncEngine) -> Overview | None:
                scope = await self.retriever.scope(user_id, inputs.get("spaces"), engine=reader)
                return await load_overview(
                    request, engine=reader, user_id=user_id, scope=scope, vectors=vectors
                )

            return await self.retriever.on_reader(user_id, read)

        async def embed_question(inputs: dict[str, Any]) -> list[float] | None:
            if (inputs.get("mode") or config.mode) == "keyword" and not extractive:
                return None  # neither the search nor the answer needs it
            # CPU work: off the event loop.
            return await asyncio.to_thread(embeddings.embed_query, inputs["standalone"])

        async def retrieve(inputs: dict[str, Any]) -> list[Passage]:
            mode = inputs.get("mode") or config.mode
            k = inputs.get("k") or config.k
            user_id = inputs["user_id"]

            # The search and the sentence completion read the same server (a replica
            # when one is fresh enough for this person).
            async def read(reader: AsyncEngine) -> list[Passage]:
                found = await self.retriever.search(
                    inputs["standalone"],
                    user_id=user_id,
                    spaces=inputs.get("spaces"),
                    k=max(k, config.quote_pool) if extractive else k,
                    mode=mode,
                    query_vector=inputs["query_vector"] if mode != "keyword" else None,
                    engine=reader,
                )
                return await complete_sentences(found, engine=reader, user_id=user_id)

            return await self.retriever.on_reader(user_id, read)

        def nothing_relevant(inputs: dict[str, Any]) -> bool:
            """Nothing retrieved close enough to the question to answer from. Keyword
            mode computes no similarity: a full-text match is its own evidence."""
            passages: list[Passage] = inputs["passages"]
            if not passages:
                return True
            similarities = [p.similarity for p in passages if p.similarity is not None]
            return bool(similarities) and max(similarities) < config.score_threshold

        def pick(inputs: dict[str, Any]) -> list[QuotedSentence]:
            if nothing_relevant(inputs):
                return []
            return pick_sentences(
                inputs["standalone"],
                [(n, p.text) for n, p in _numbered(inputs)],
                embeddings=vectors,
                query_vector=inputs.get("query_vector"),
            )

        async def apick(inputs: dict[str, Any]) -> list[QuotedSentence]:
            # Sentence embedding is CPU work: done in a thread.
            return await asyncio.to_thread(pick, inputs)

        async def aquotes(inputs: dict[str, Any]) -> AsyncIterator[str]:
            for piece in render_quotes(inputs["quotes"]):
                yield piece

        async def overview_answer(
            inputs: dict[str, Any], config: RunnableConfig
        ) -> AsyncIterator[str]:
            found: Overview = inputs["overview"]
            if llm is None or not found.quotes:
                for piece in render_overview(found) if llm is None else [render_source_list(found)]:
                    yield piece
                return
            yield render_source_list(found) + "\n\n"
            summary = OVERVIEW_PROMPT | llm.with_config(tags=[ANSWER_TAG]) | StrOutputParser()
            prompt = {"question": inputs["question"], "passages": overview_passages_text(found)}
            async for piece in summary.astream(prompt, config):
                yield piece

        if llm is None:
            rewrite: Runnable[dict[str, Any], str] = RunnableLambda(
                _with_previous_question, name="previous_question"
            )
            respond: Runnable[dict[str, Any], str] = RunnableLambda(aquotes, name="extractive")
        else:
            rewrite = _named(
                RunnablePassthrough.assign(rewritten=CONDENSE_PROMPT | llm | StrOutputParser())
                | RunnableLambda(_rewrite_or_question),
                "rewrite",
            )
            respond = (
                RunnableLambda(_answer_prompt_inputs, name="numbered_passages")
                | ANSWER_PROMPT
                | llm.with_config(tags=[ANSWER_TAG])
                | StrOutputParser()
            )

        condense = _named(RunnableBranch((_no_history, _question_as_is), rewrite), "condense")
        answer = _named(
            RunnableBranch(
                (nothing_relevant, RunnableLambda(_dont_know, name="dont_know")), respond
            ),
            "answer",
        )
        question = (
            RunnablePassthrough.assign(standalone=condense)
            .assign(query_vector=RunnableLambda(embed_question, name="embed_question"))
            .assign(passages=RunnableLambda(retrieve, name="retrieve"))
        )
        if llm is None:
            question = question.assign(quotes=RunnableLambda(apick, name="pick_sentences"))
        question = _named(question.assign(answer=answer), "answer_question")
        from_index = (
            RunnablePassthrough.assign(standalone=RunnableLambda(_question_as_is))
            .assign(passages=RunnableLambda(lambda i: i["overview"].passages, name="central"))
            .assign(quotes=RunnableLambda(lambda i: i["overview"].quotes, name="key_sentences"))
            .assign(answer=RunnableLambda(overview_answer, name="overview_answer"))
        )
        chain = RunnablePassthrough.assign(
            overview=RunnableLambda(overview, name="overview")
        ) | RunnableBranch((_has_overview, _named(from_index, "from_index")), question)
        return _named(chain, "kb_answer")

    async def astream(
        self,
        question: str,
        *,
        user_id: uuid.UUID,
        spaces: Sequence[uuid.UUID] | None = None,
        history: Sequence[BaseMessage] = (),
        mode: str | None = None,
        k: int | None = None,
    ) -> AsyncIterator[str | Answer]:
        """Yield the answer's text as it streams, then one final `Answer`."""
        mode = check_mode(mode or self.config.mode)
        k = k or self.config.k
        question = question.strip()
        inputs = {
            "question": question,
            "history": list(history),
            "user_id": user_id,
            "spaces": list(spaces) if spaces is not None else None,
            "mode": mode,
            "k": k,
        }
        calls = _ModelCalls()
        standalone, passages, parts = question, [], []
        quotes: list[QuotedSentence] = []
        from_index = False
        # Each step's output arrives as its own chunk the moment the step ends, so the
        # arrival times split the latency into retrieval and generation.
        started = condensed_at = retrieved_at = time.perf_counter()
        first_piece_at: float | None = None
        try:
            async for chunk in self.runnable.astream(inputs, {"callbacks": [calls]}):
                now = time.perf_counter()
                if "standalone" in chunk:
                    standalone, condensed_at = chunk["standalone"], now
                if "passages" in chunk:
                    passages, retrieved_at = chunk["passages"], now
                if chunk.get("overview") is not None:
                    from_index = True
                if "quotes" in chunk:
                    quotes = chunk["quotes"]
                piece = chunk.get("answer")
                if piece:
                    if first_piece_at is None:
                        first_piece_at = now
                    parts.append(piece)
                    yield piece
        except KbError:
            raise
        except Exception as exc:
            if calls.failed:  # provider errors come in many types
                raise LlmUnavailable.wrap(self.model_name, exc) from exc
            raise
        generation_ms = (time.perf_counter() - retrieved_at) * 1000
        retrieval_ms = (retrieved_at - condensed_at) * 1000

        text = "".join(parts)
        by_number: dict[int, Passage] = dict(enumerate(passages, start=1))
        if quotes or from_index:
            quoted = _quotes_by_number(quotes)
        else:
            # What the model quoted word for word wins over the closest-words guess.
            quoted = supporting_quotes(text, by_number) | verbatim_quotes(text, by_number)
        sources = [
            Citation(n, by_number[n], quoted.get(n, ()))
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
            tokens_used=calls.answer_tokens,
            rewritten=standalone != question,
            overview=from_index,
        )
        yield Answer(
            text=text,
            sources=sources,
            standalone_question=standalone,
            model=self.model_name,
            mode=mode,
            timings=AnswerTimings(
                retrieval=retrieval_ms / 1000,
                first_token=None if first_piece_at is None else first_piece_at - started,
                total=time.perf_counter() - started,
            ),
        )

    async def ainvoke(
        self,
        question: str,
        *,
        user_id: uuid.UUID,
        spaces: Sequence[uuid.UUID] | None = None,
        history: Sequence[BaseMessage] = (),
        mode: str | None = None,
        k: int | None = None,
    ) -> Answer:
        """The final `Answer` without the streamed pieces."""
        final: Answer | None = None
        stream = self.astream(
            question, user_id=user_id, spaces=spaces, history=history, mode=mode, k=k
        )
        async for item in stream:
            if isinstance(item, Answer):
                final = item
        assert final is not None
        return final

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
        overview: bool = False,
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
                details={"rewritten": rewritten, "overview": overview},
            )
