"""Answer quality on questions with gold answers (`kb eval qa FILE.jsonl`).

Each line of the file is a question with its gold answer(s) and, optionally, the
passage of the document that holds it:

    {"id": "q01", "question": "...", "answer": "September 21, 2020",   # or "answers": [...]
     "doc": "federal-register-2020-17221.pdf", "passage": "DATES: The FAA must ..."}

A quote *holds the gold answer* when, compared without case, punctuation or spacing
differences (dashes and quotes unified):

1. the answer's text is in the quote, or at least 75 % of the answer's content words
   are (gold answers are often paraphrased: "In 1998, by members of Netscape."); or
2. the quote and the gold passage are the same text in large part (80 % of the
   shorter one's content words are in the other) and the quote has at least one of
   the answer's content words: the quote is the evidence the answer was taken from
   (a CSV row "date: 2012-02-13; precipitation: 11.4; ..." for "11.4 (mm), rain").

Reported: the share of questions whose first quoted sentence holds the answer, whose
any quote does, that got "I don't know", and the mean latency.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from db.errors import InvalidInput
from retrieval.chain import Answer, AnswerChain
from retrieval.prompts import DONT_KNOW, EXTRACTIVE_NOTHING

__all__ = [
    "QaItem",
    "QaReport",
    "QaResult",
    "evaluate_answers",
    "holds_answer",
    "load_qa",
    "ordered_quotes",
]

ANSWER_RECALL = 0.75
PASSAGE_OVERLAP = 0.8
_TOKEN = re.compile(r"[a-z0-9]+(?:\.[0-9]+)*")
_STOP_WORDS = (
    "a an and are as at be by for from has have in is it its of on or that the this to was "
    "were which with who what when where how"
)
_STOP = frozenset(_STOP_WORDS.split())
_UNIFY = str.maketrans({"–": "-", "—": "-", "‐": "-", "’": "'", "‘": "'", "“": '"', "”": '"'})


@dataclass(frozen=True)
class QaItem:
    id: str
    question: str
    answers: tuple[str, ...]
    doc: str | None = None
    passage: str | None = None


def load_qa(path: Path) -> list[QaItem]:
    """The questions of a JSON-lines file (see the module docstring)."""
    items = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidInput(f"Cannot read {path}: {exc.strerror}.", hint="Check the path.") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            answers = record.get("answers") or [record["answer"]]
            if isinstance(answers, str):
                answers = [answers]
            items.append(
                QaItem(
                    id=str(record.get("id", number)),
                    question=str(record["question"]),
                    answers=tuple(str(a) for a in answers),
                    doc=record.get("doc"),
                    passage=record.get("passage"),
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise InvalidInput(
                f"{path}, line {number}: not a question record ({type(exc).__name__}: {exc}).",
                hint='Each line needs "question" and "answer" (or "answers").',
            ) from None
    if not items:
        raise InvalidInput(f"{path} holds no questions.", hint="One JSON object per line.")
    return items


def _normal(text: str) -> str:
    return " ".join(_TOKEN.findall(text.translate(_UNIFY).casefold()))


def _content(text: str) -> set[str]:
    return {t for t in _normal(text).split() if t not in _STOP}


def holds_answer(quote: str, item: QaItem) -> bool:
    """Whether `quote` holds one of the item's gold answers (module docstring)."""
    quoted, quote_words = _normal(quote), _content(quote)
    answer_words: set[str] = set()
    for answer in item.answers:
        words = _content(answer)
        answer_words |= words
        if _normal(answer) and f" {_normal(answer)} " in f" {quoted} ":
            return True
        if words and len(words & quote_words) >= ANSWER_RECALL * len(words):
            return True
    if item.passage and quote_words & answer_words:
        gold = _content(item.passage)
        shorter = min(len(gold), len(quote_words))
        if shorter and len(gold & quote_words) >= PASSAGE_OVERLAP * shorter:
            return True
    return False


def ordered_quotes(answer: Answer) -> list[str]:
    """The answer's quotes in the order a reader meets them: the citations in order of
    first appearance, each one's quotes best first (extractive answers quote the best
    sentence first, so the first one here is the first quote of the text)."""
    return [quote for citation in answer.sources for quote in citation.quotes]


@dataclass(frozen=True)
class QaResult:
    item: QaItem
    quotes: list[str]
    dont_know: bool
    seconds: float

    @property
    def first_hit(self) -> bool:
        return bool(self.quotes) and holds_answer(self.quotes[0], self.item)

    @property
    def any_hit(self) -> bool:
        return any(holds_answer(q, self.item) for q in self.quotes)


@dataclass(frozen=True)
class QaReport:
    results: list[QaResult]

    def _share(self, hits: Sequence[bool]) -> float:
        return sum(hits) / len(hits) if hits else 0.0

    @property
    def first_rate(self) -> float:
        return self._share([r.first_hit for r in self.results])

    @property
    def any_rate(self) -> float:
        return self._share([r.any_hit for r in self.results])

    @property
    def dont_know_rate(self) -> float:
        return self._share([r.dont_know for r in self.results])

    @property
    def mean_seconds(self) -> float:
        return sum(r.seconds for r in self.results) / len(self.results) if self.results else 0.0


async def evaluate_answers(
    chain: AnswerChain,
    items: Sequence[QaItem],
    *,
    user_id: uuid.UUID,
    mode: str | None = None,
    k: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> QaReport:
    """Ask every question (one at a time, no history) and score the quotes."""
    results = []
    for done, item in enumerate(items, start=1):
        started = time.perf_counter()
        answer = await chain.ainvoke(item.question, user_id=user_id, mode=mode, k=k)
        seconds = time.perf_counter() - started
        dont_know = answer.text.startswith(DONT_KNOW) or EXTRACTIVE_NOTHING in answer.text
        results.append(QaResult(item, ordered_quotes(answer), dont_know, seconds))
        if progress is not None:
            progress(done, len(items))
    return QaReport(results)
