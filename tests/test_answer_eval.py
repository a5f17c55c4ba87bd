"""What `kb eval qa` counts as a quote holding the gold answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from db.errors import InvalidInput
from retrieval.answer_eval import QaItem, holds_answer, load_qa

ROW = QaItem(
    id="q10",
    question="How much precipitation was recorded in Seattle on 2012-02-13?",
    answers=("11.4 (mm), rain",),
    passage="2012-02-13,11.4,7.2,4.4,1.4,rain",
)


def test_the_answer_text_in_the_quote_counts_whatever_the_dashes_and_case() -> None:
    item = QaItem(id="q", question="?", answers=("AD 2018–23–51",))
    assert holds_answer("The FAA proposes to supersede ad 2018-23-51, which applies.", item)
    assert not holds_answer("The FAA issued AD 2020-11-05 in May.", item)


def test_most_of_a_paraphrased_answers_words_count() -> None:
    item = QaItem(id="q", question="?", answers=("In 1998, by members of Netscape.",))
    assert holds_answer("Mozilla is a community, created in 1998 by members of Netscape.", item)
    assert not holds_answer("Mozilla was founded by Netscape.", item)


def test_the_gold_passage_quoted_counts_a_neighbouring_record_does_not() -> None:
    record = "date: 2012-02-13; precipitation: 11.4; temp_max: 7.2; wind: 1.4; weather: rain"
    other = "date: 2012-02-14; precipitation: 2.5; temp_max: 6.7; wind: 3.1; weather: rain"
    assert holds_answer(record, ROW)
    assert not holds_answer(other, ROW)


def test_questions_load_with_one_answer_or_several(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text(
        '{"id": "a", "question": "Q1?", "answer": "x"}\n\n'
        '{"question": "Q2?", "answers": ["y", "z"], "doc": "d.pdf"}\n'
    )
    first, second = load_qa(path)
    assert (first.id, first.answers) == ("a", ("x",))
    assert (second.id, second.answers, second.doc) == ("3", ("y", "z"), "d.pdf")


def test_a_line_without_a_question_is_refused_with_its_number(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text('{"question": "Q1?", "answer": "x"}\n{"answer": "y"}\n')
    with pytest.raises(InvalidInput, match="line 2"):
        load_qa(path)
