"""No-LLM answers: the sentences of the retrieved passages that best answer the question.

Every whole sentence of every retrieved passage is a candidate (`retrieval.sentences`
cuts them; fragments at a chunk's edges are never quoted). A candidate's score is
how well it answers the question, whichever passage it comes from:

- cosine similarity of its embedding to the question's (the same model as retrieval;
  the sentences of one answer are embedded in one batch, and each sentence's vector
  is cached, since overlapping chunks and popular passages repeat them);
- plus the share of the question's terms it contains, weighted by how rare each term
  is among the candidates (an exact code or name still wins);
- plus a smaller share for the question's terms in its passage (weighted by how rare
  each is among the passages): of two alike sentences ("The FAA must receive comments
  on this proposed AD by ..."), the one whose passage is about what the question
  names (the Boeing 737 MAX directive, not the Pilatus one beside it) wins;
- plus a small bonus when it holds what the question asks for: a number for "how
  many / how much", a date or year for "when / what date / what year";
- minus as much when it ends like a clause, not a statement (";", ",", ":"): an item
  of an enumeration ("a. Change in the trustee's percentage fee;") names the topic
  without saying anything of it.

The best sentence comes first; the same sentence (or a near copy, e.g. from two
overlapping chunks) is quoted once. Each quote carries the citation of its passage.
Without a model to rewrite follow-ups either, `searched_without_model` widens a
follow-up with the previous question instead.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from langchain_core.embeddings import Embeddings
from langchain_core.messages import BaseMessage, HumanMessage

from retrieval.bm25 import BM25_B
from retrieval.prompts import EXTRACTIVE_LABEL, EXTRACTIVE_NOTHING, neutralize_citations
from retrieval.sentences import quotable, sentence_spans

__all__ = [
    "QuotedSentence",
    "SentenceVectors",
    "extractive_answer",
    "looks_like_follow_up",
    "pick_sentences",
    "render_quotes",
    "searched_without_model",
    "supporting_sentences",
    "terms",
]

_WORD = re.compile(r"[^\W_]+(?:[.,][0-9]+)*", re.UNICODE)
# Codes, dates and compounds ("2012-02-13", "PC-12/47E", "nose-down") also count whole:
# an exact identifier in a sentence is strong evidence, its parts alone are not.
_COMPOUND = re.compile(r"[^\W_]+(?:[-–/.][^\W_]+)+", re.UNICODE)
_STOP_WORDS = (
    "a an and are as at be by for from has have how i in is it its of on or that the this "
    "to was were what when where which who whom whose why will with do does did can could "
    "you your my we our me should would must may might shall there their they them than "
    "then into about any all also been being but if no not only other so some such these "
    "those under up very much many according tell give list"
)
_STOP = frozenset(_STOP_WORDS.split())
_NUMBER = re.compile(r"\b\d[\d,.]*\b")
_DECIMAL = re.compile(r"\d+[.,]\d+")
# A date or a year standing alone: "September 21, 2020", "2012-02-13", "in 1998"; not the
# "2018" of an identifier such as "AD 2018-23-51".
_MONTH = (
    r"(?:January|February|March|April|May|June|July|August|September|October|November|"
    r"December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.?"
)
_YEAR_OR_DATE = re.compile(
    rf"\b{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}\b|\b\d{{1,2}}\s+{_MONTH}\s+\d{{4}}\b"
    r"|\b\d{4}-\d{2}-\d{2}\b|(?<![\w–/-])(?:1[5-9]\d\d|20\d\d)(?![\w–/-])",
    re.IGNORECASE,
)
_ASKS_NUMBER = re.compile(
    r"^\s*(how (many|much|long|old|far|often)|what (number|percentage))\b", re.I
)
_ASKS_DATE = re.compile(
    r"^\s*(when|by when|(by |on |in |until )?what (date|day|year|time))\b", re.I
)

LEXICAL_WEIGHT = 0.35
CONTEXT_WEIGHT = 0.15
ANSWER_TYPE_BONUS = 0.1
CLAUSE_PENALTY = 0.1
_ENDS_CLAUSE = re.compile(r"[;,:]\s*$")
# Quotes scoring below this share of the best one are noise next to it.
RELATIVE_FLOOR = 0.6
NEAR_DUPLICATE = 0.8
# The model embeds at most this many sentences per answer (the lexically best).
MAX_CANDIDATES = 16


@dataclass(frozen=True)
class QuotedSentence:
    number: int  # the citation number of the passage it comes from
    text: str  # whitespace-normalised, a substring of normalise_space(passage text)
    score: float


def _singular(word: str) -> str:
    """A plural's singular ("dates" -> "date", "policies" -> "policy"): the one
    stemming that is safe without a language model of the word."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def terms(text: str) -> list[str]:
    """Content words of `text`, lower-cased (numbers kept, "11.4" whole), then its
    compounds ("2012-02-13") whole."""
    words = [_singular(w) for w in (m.lower() for m in _WORD.findall(text)) if w not in _STOP]
    return words + [m.lower() for m in _COMPOUND.findall(text) if not _DECIMAL.fullmatch(m)]


class SentenceVectors:
    """Sentence embeddings with a bounded cache, shared by every question.

    The cache is keyed by the sentence text; a hit saves the model call, which is the
    main cost of an extractive answer.
    """

    def __init__(
        self, embeddings: Embeddings, *, capacity: int = 20_000, batch_size: int = 16
    ) -> None:
        self.embeddings = embeddings
        self.capacity = capacity
        self.batch_size = batch_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised vectors of `texts`, one row each (missing ones in one batch)."""
        unique = list(dict.fromkeys(texts))
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for text in unique:
                vector = self._cache.get(text)
                if vector is not None:
                    self._cache.move_to_end(text)
                    found[text] = vector
        missing = sorted((t for t in unique if t not in found), key=len)
        if missing:
            # Small batches of similar lengths: a batch is padded to its longest text,
            # and on a small CPU 8 x 16 sentences run faster than 1 x 128.
            fresh = np.asarray(
                [
                    vector
                    for start in range(0, len(missing), self.batch_size)
                    for vector in self.embeddings.embed_documents(
                        missing[start : start + self.batch_size]
                    )
                ],
                dtype=np.float32,
            )
            fresh /= np.maximum(np.linalg.norm(fresh, axis=1, keepdims=True), 1e-12)
            found.update(zip(missing, fresh, strict=True))
            with self._lock:
                for text, vector in zip(missing, fresh, strict=True):
                    self._cache[text] = vector
                while len(self._cache) > self.capacity:
                    self._cache.popitem(last=False)
        return np.vstack([found[t] for t in texts])


def _unit(vector: Sequence[float]) -> np.ndarray:
    array = np.asarray(vector, dtype=np.float32)
    return array / max(float(np.linalg.norm(array)), 1e-12)


def _answer_type_bonus(question: str, question_terms: set[str], sentence: str) -> float:
    if _ASKS_NUMBER.search(question):
        numbers = {n.strip(".,") for n in _NUMBER.findall(sentence)}
        if numbers - question_terms:
            return ANSWER_TYPE_BONUS
    elif _ASKS_DATE.search(question) and _YEAR_OR_DATE.search(sentence):
        return ANSWER_TYPE_BONUS
    return 0.0


def _coverage(wanted: set[str], bags: Sequence[set[str]]) -> list[float]:
    """Per bag, the share of the `wanted` terms it holds, each weighted by how rare it
    is among the bags (a smoothed idf); a term no bag has cannot tell them apart and
    would only dilute the others."""
    counts = {t: sum(t in bag for bag in bags) for t in wanted}
    weight = {t: math.log(1 + len(bags) / (1 + n)) for t, n in counts.items() if n}
    total = sum(weight.values()) or 1.0
    return [sum(weight.get(t, 0.0) for t in wanted & bag) / total for bag in bags]


def _near_duplicate(a: set[str], b: set[str]) -> bool:
    if not a or not b:
        return a == b
    overlap = len(a & b)
    return overlap / len(a | b) >= NEAR_DUPLICATE or overlap == min(len(a), len(b))


def pick_sentences(
    question: str,
    passages: Sequence[tuple[int, str]],
    *,
    embeddings: Embeddings | SentenceVectors | None = None,
    query_vector: Sequence[float] | None = None,
    max_sentences: int = 4,
    per_passage: int = 2,
) -> list[QuotedSentence]:
    """The sentences of `[(number, text)]` that best answer `question`, best first.

    Whole sentences only, each once (near copies too), at most `per_passage` from one
    passage. `query_vector` saves embedding the question again (retrieval did).
    """
    question_terms = terms(question)
    wanted = set(question_terms)
    passage_share = _coverage(wanted, [set(terms(text)) for _, text in passages])
    # A sentence repeated in several passages (overlapping chunks, or one boilerplate
    # line in several documents) is quoted from the passage naming most of the question.
    where: dict[str, tuple[int, int]] = {}
    for rank, (number, text) in enumerate(passages):
        for sentence in sentence_spans(text):
            known = where.get(sentence.text)
            if quotable(sentence) and (
                known is None or passage_share[rank] > passage_share[known[1]]
            ):
                where[sentence.text] = (number, rank)
    candidates = sorted(
        ((number, rank, text) for text, (number, rank) in where.items()),
        key=lambda c: c[1],
    )
    if not candidates:
        return []
    bags = [set(terms(text)) for _, _, text in candidates]
    # BM25's length normalisation: a long sentence matches more words by its length
    # alone (and makes a worse quote).
    lengths = [len(bag) or 1 for bag in bags]
    mean_length = sum(lengths) / len(lengths)
    sentence_share = _coverage(wanted, bags)
    # The words' part of each score: its own (length-normalised) and its passage's.
    lexical = [
        LEXICAL_WEIGHT * share / (1 - BM25_B + BM25_B * length / mean_length)
        + CONTEXT_WEIGHT * passage_share[rank]
        for share, length, (_, rank, _) in zip(sentence_share, lengths, candidates, strict=True)
    ]
    if len(candidates) > MAX_CANDIDATES:
        # Cap the model's work: keep the lexically best, earlier passages first on ties.
        keep = sorted(range(len(candidates)), key=lambda i: (-lexical[i], candidates[i][1]))
        kept = sorted(keep[:MAX_CANDIDATES])
        candidates = [candidates[i] for i in kept]
        bags = [bags[i] for i in kept]
        lexical = [lexical[i] for i in kept]
    similarity = np.zeros(len(candidates), dtype=np.float32)
    if embeddings is not None:
        vectors = embeddings if isinstance(embeddings, SentenceVectors) else None
        if vectors is None:
            assert isinstance(embeddings, Embeddings)
            vectors = SentenceVectors(embeddings, capacity=0)
        question_vector = _unit(
            query_vector if query_vector is not None else vectors.embeddings.embed_query(question)
        )
        similarity = vectors.vectors([c[2] for c in candidates]) @ question_vector
    scored = sorted(
        (
            (
                float(similarity[i])
                + lexical[i]
                + _answer_type_bonus(question, wanted, text)
                - (CLAUSE_PENALTY if _ENDS_CLAUSE.search(text) else 0.0),
                rank,
                i,
            )
            for i, (_, rank, text) in enumerate(candidates)
        ),
        key=lambda s: (-s[0], s[1], s[2]),
    )
    chosen: list[QuotedSentence] = []
    chosen_bags: list[set[str]] = []
    taken: dict[int, int] = {}
    best = scored[0][0]
    for score, _, i in scored:
        number, _, text = candidates[i]
        if len(chosen) >= max_sentences or score <= 0 or score < RELATIVE_FLOOR * best:
            break
        if taken.get(number, 0) >= per_passage:
            continue
        if any(_near_duplicate(bags[i], other) for other in chosen_bags):
            continue
        taken[number] = taken.get(number, 0) + 1
        chosen.append(QuotedSentence(number=number, text=text, score=score))
        chosen_bags.append(bags[i])
    return chosen


def render_quotes(quotes: Sequence[QuotedSentence]) -> Iterator[str]:
    """The labelled, cited answer in pieces: the label, then one quote per piece."""
    yield EXTRACTIVE_LABEL + "\n\n"
    if not quotes:
        yield EXTRACTIVE_NOTHING
        return
    for i, quote in enumerate(quotes):
        end = "\n" if i < len(quotes) - 1 else ""
        yield f"> “{neutralize_citations(quote.text)}” [{quote.number}]\n{end}"


def extractive_answer(
    question: str,
    passages: Sequence[tuple[int, str]],
    *,
    embeddings: Embeddings | SentenceVectors | None = None,
    max_sentences: int = 4,
) -> Iterator[str]:
    """`pick_sentences` rendered by `render_quotes`."""
    yield from render_quotes(
        pick_sentences(question, passages, embeddings=embeddings, max_sentences=max_sentences)
    )


def supporting_sentences(
    statement: str, passage_text: str, *, limit: int = 2, min_overlap: float = 0.3
) -> tuple[str, ...]:
    """The passage's sentences sharing the most words with `statement` (an LLM answer's
    sentences that cite the passage), best first: what the citation panel highlights."""
    wanted = set(terms(statement))
    if not wanted:
        return ()
    scored = []
    for sentence in sentence_spans(passage_text):
        if not quotable(sentence):
            continue
        bag = set(terms(sentence.text))
        if not bag:
            continue
        overlap = len(wanted & bag) / min(len(wanted), len(bag))
        if overlap >= min_overlap:
            scored.append((overlap, -sentence.start, sentence.text))
    scored.sort(reverse=True)
    return tuple(text for _, _, text in scored[:limit])


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
# A pronoun this early leans on the previous question ("does it ...", "what is its
# ..."); later in the question it usually points back inside it ("who fixes the fee,
# and can the trustee negotiate it?"), and the previous question's words would pull in
# the previous topic's passages.
FOLLOW_UP_PRONOUN_WITHIN = 4


def looks_like_follow_up(question: str) -> bool:
    """Very short, opening with "and/what about...", or leaning on a pronoun early."""
    text = question.lower().strip()
    words = re.findall(r"[a-z0-9']+", text)
    return (
        len(words) <= FOLLOW_UP_MAX_WORDS
        or text.startswith(_FOLLOW_UP_OPENINGS)
        or bool(_PRONOUNS & set(words[:FOLLOW_UP_PRONOUN_WITHIN]))
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
