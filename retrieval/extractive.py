"""No-LLM answers: quote the sentences of the top passages closest to the question.

Sentences are scored with the same embedding model as retrieval (cosine to the
question) plus a small bonus for shared words, so an exact term such as a product
code still wins. Each quoted sentence carries the citation of its passage.
Without a model to rewrite follow-ups either, `searched_without_model` widens a
follow-up with the previous question instead.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from langchain_core.embeddings import Embeddings
from langchain_core.messages import BaseMessage, HumanMessage

from retrieval.prompts import EXTRACTIVE_LABEL, EXTRACTIVE_NOTHING, neutralize_citations

__all__ = [
    "QuotedSentence",
    "extractive_answer",
    "looks_like_follow_up",
    "pick_sentences",
    "searched_without_model",
    "split_sentences",
]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n{2,}|\n(?=\s*[-*•]\s)")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_STOP_WORDS = (
    "a an and are as at be by for from has have how i in is it its of on or that the this "
    "to was were what when where which who why will with do does did can you your my we"
)
_STOP = frozenset(_STOP_WORDS.split())
MIN_SENTENCE_CHARS = 20
MAX_SENTENCE_CHARS = 400


@dataclass(frozen=True)
class QuotedSentence:
    number: int  # the citation number of the passage it comes from
    text: str
    score: float


def split_sentences(text: str) -> list[str]:
    """Sentences (or list items / paragraphs) of a passage, whitespace-normalised."""
    pieces = (" ".join(p.split()) for p in _SENTENCE_END.split(text))
    sentences = []
    for piece in pieces:
        if len(piece) < MIN_SENTENCE_CHARS:
            continue
        if len(piece) > MAX_SENTENCE_CHARS:
            piece = piece[:MAX_SENTENCE_CHARS].rsplit(" ", 1)[0] + " …"
        sentences.append(piece)
    return sentences


def _terms(text: str) -> set[str]:
    return {w for w in (m.lower() for m in _WORD.findall(text)) if w not in _STOP}


def _overlap(question_terms: set[str], sentence: str) -> float:
    if not question_terms:
        return 0.0
    return len(question_terms & _terms(sentence)) / len(question_terms)


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def pick_sentences(
    question: str,
    passages: Sequence[tuple[int, str]],
    *,
    embeddings: Embeddings | None = None,
    max_sentences: int = 4,
    per_passage: int = 2,
) -> list[QuotedSentence]:
    """The best sentences of `[(number, text)]`, in the order of the passages."""
    candidates = [
        (number, order, sentence)
        for number, text in passages
        for order, sentence in enumerate(split_sentences(text))
    ]
    if not candidates:
        return []
    terms = _terms(question)
    similarities = [0.0] * len(candidates)
    if embeddings is not None:
        question_vector = embeddings.embed_query(question)
        vectors = embeddings.embed_documents([c[2] for c in candidates])
        similarities = [_cosine(question_vector, v) for v in vectors]
    scored = [
        (sim + 0.5 * _overlap(terms, sentence), number, order, sentence)
        for (number, order, sentence), sim in zip(candidates, similarities, strict=True)
    ]
    scored.sort(key=lambda s: -s[0])
    chosen: list[tuple[float, int, int, str]] = []
    taken: dict[int, int] = {}
    for item in scored:
        if len(chosen) >= max_sentences:
            break
        score, number = item[0], item[1]
        if score <= 0 or taken.get(number, 0) >= per_passage:
            continue
        taken[number] = taken.get(number, 0) + 1
        chosen.append(item)
    numbers = [n for n, _ in passages]
    chosen.sort(key=lambda s: (numbers.index(s[1]), s[2]))
    return [QuotedSentence(number=n, text=t, score=s) for s, n, _, t in chosen]


def extractive_answer(
    question: str,
    passages: Sequence[tuple[int, str]],
    *,
    embeddings: Embeddings | None = None,
    max_sentences: int = 4,
) -> Iterator[str]:
    """The labelled, cited answer in pieces: the label, then one quote per piece."""
    quotes = pick_sentences(question, passages, embeddings=embeddings, max_sentences=max_sentences)
    yield EXTRACTIVE_LABEL + "\n\n"
    if not quotes:
        yield EXTRACTIVE_NOTHING
        return
    for i, quote in enumerate(quotes):
        end = "\n" if i < len(quotes) - 1 else ""
        yield f"> “{neutralize_citations(quote.text)}” [{quote.number}]\n{end}"


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


def searched_without_model(question: str, history: Sequence[BaseMessage]) -> str:
    """What to search for when no model can resolve references: a question that looks
    like a follow-up ("and its warranty?") gets the previous question's words too."""
    previous = next(
        (m.text.strip() for m in reversed(history) if isinstance(m, HumanMessage)), None
    )
    if previous and previous != question and looks_like_follow_up(question):
        return f"{previous} {question}"
    return question
