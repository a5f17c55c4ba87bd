"""Extractive answers: the best sentences, quoted with their citations, clearly labelled."""

from __future__ import annotations

import re

from retrieval.chain import cited_numbers
from retrieval.extractive import extractive_answer, pick_sentences, split_sentences
from retrieval.prompts import EXTRACTIVE_LABEL, EXTRACTIVE_NOTHING
from tests.fakes import HashEmbeddings

PASSAGES = [
    (
        1,
        "The cafeteria opens at eight. The Zephyr kettle carries a two year warranty on "
        "the heating element. Parking is free for visitors.",
    ),
    (
        2,
        "Warranty claims need the original receipt. Claims are answered within five days.",
    ),
    (3, "Our office plants are watered every Tuesday by the facilities team."),
]


def test_answer_is_labelled_and_every_quote_is_cited() -> None:
    pieces = list(extractive_answer("Zephyr kettle warranty", PASSAGES))
    assert pieces[0] == EXTRACTIVE_LABEL + "\n\n"
    quotes = pieces[1:]
    assert len(quotes) >= 2
    for quote in quotes:
        assert re.search(r"“.+” \[\d\]", quote)
    text = "".join(pieces)
    assert "“The Zephyr kettle carries a two year warranty on the heating element.” [1]" in text
    assert 3 not in cited_numbers(text)


def test_sentences_are_ranked_by_the_embeddings_when_given() -> None:
    quotes = pick_sentences(
        "when are plants watered", PASSAGES, embeddings=HashEmbeddings(), max_sentences=1
    )
    assert [(q.number, q.text) for q in quotes] == [
        (3, "Our office plants are watered every Tuesday by the facilities team.")
    ]


def test_quotes_keep_passage_order_and_at_most_two_per_passage() -> None:
    quotes = pick_sentences("warranty claims receipt kettle", PASSAGES, max_sentences=4)
    numbers = [q.number for q in quotes]
    assert numbers == sorted(numbers)
    assert all(numbers.count(n) <= 2 for n in set(numbers))


def test_nothing_related_says_so_after_the_label() -> None:
    pieces = list(extractive_answer("zeppelin", [(1, "Short.")]))
    assert pieces == [EXTRACTIVE_LABEL + "\n\n", EXTRACTIVE_NOTHING]


def test_sentence_splitting_keeps_list_items_and_drops_fragments() -> None:
    text = "Setup steps follow below.\n- Install the package first\n- Run the setup command\nOk."
    assert split_sentences(text) == [
        "Setup steps follow below.",
        "- Install the package first",
        "- Run the setup command Ok.",
    ]


def test_overlong_sentences_are_shortened() -> None:
    long = "word " * 200
    (only,) = split_sentences(long)
    assert len(only) <= 402 and only.endswith("…")


def test_bracketed_numbers_inside_a_quote_do_not_become_citations() -> None:
    passages = [(2, "Vitamin D lowers fracture risk in older adults [1, 7] according to trials.")]
    text = "".join(extractive_answer("vitamin D fracture risk", passages))
    assert "(1, 7) according to trials.” [2]" in text
    assert cited_numbers(text) == [2]
