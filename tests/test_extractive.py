"""Extractive answers: whole sentences, each once, the best first, quoted and cited."""

from __future__ import annotations

import re

from retrieval.chain import cited_numbers
from retrieval.extractive import (
    SentenceVectors,
    extractive_answer,
    pick_sentences,
    supporting_sentences,
)
from retrieval.prompts import EXTRACTIVE_LABEL, EXTRACTIVE_NOTHING
from retrieval.sentences import locate_quote, normalise_space, sentence_spans, split_sentences
from retrieval.stitching import overlap, widen
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

# A PDF column as pypdf extracts it: wrapped lines, a footnote number inside a
# sentence, abbreviations, a heading line, a decimal number.
PDF_COLUMN = (
    "The data from the flight data\n"
    "recorders, as summarized in reports 7 of\n"
    "the accident, indicated that if a single\n"
    "erroneously high sensor input is received,\n"
    "the system (MCAS) 8 can command repeated\n"
    "nose-down trim of the stabilizer.\n"
    "Costs of Compliance\n"
    "The FAA estimates that this proposed\n"
    "AD affects 73 airplanes of U.S. registry.\n"
    "See No. 5 in the docket and Fig. 2 of the\n"
    "report, e.g. the wiring changes by Dr. J. R.\n"
    "Smith, which cost 3.5 hours per airplane.\n"
)


def test_sentences_of_a_wrapped_pdf_column_are_whole() -> None:
    assert split_sentences(PDF_COLUMN) == [
        "The data from the flight data recorders, as summarized in reports 7 of the "
        "accident, indicated that if a single erroneously high sensor input is received, "
        "the system (MCAS) 8 can command repeated nose-down trim of the stabilizer.",
        "The FAA estimates that this proposed AD affects 73 airplanes of U.S. registry.",
        "See No. 5 in the docket and Fig. 2 of the report, e.g. the wiring changes by "
        "Dr. J. R. Smith, which cost 3.5 hours per airplane.",
    ]


def test_no_quote_is_a_fragment_at_a_footnote_number_or_an_abbreviation() -> None:
    quotes = pick_sentences(
        "How many airplanes of U.S. registry does the AD affect?",
        [(1, PDF_COLUMN)],
        embeddings=HashEmbeddings(),
        max_sentences=4,
        per_passage=4,
    )
    whole = set(split_sentences(PDF_COLUMN))
    assert quotes and all(q.text in whole for q in quotes)
    for quote in quotes:
        assert quote.text[0].isupper() and quote.text.endswith(".")
        assert not re.search(r"\b(U\.S|No|Fig|Dr|e\.g|J|R)\.$", quote.text)


def test_a_passage_cut_at_both_ends_quotes_only_its_whole_sentences() -> None:
    chunk = (
        "indicated that if a single sensor fails. The FAA must receive comments by "
        "September 21, 2020. This proposed AD would"
    )
    spans = sentence_spans(chunk)
    assert spans[0].cut_start and spans[-1].cut_end
    assert split_sentences(chunk) == ["The FAA must receive comments by September 21, 2020."]


def test_list_items_records_and_headings_are_units_of_their_own() -> None:
    text = (
        "## Setup\n\nSetup steps follow below.\n- Install the package first\n"
        "- Run the setup command\n\n"
        "date: 2012-02-13; precipitation: 11.4; temp_max: 7.2; weather: rain\n"
        "date: 2012-02-14; precipitation: 2.5; temp_max: 6.7; weather: rain\n"
    )
    assert split_sentences(text) == [
        "Setup steps follow below.",
        "- Install the package first",
        "- Run the setup command",
        "date: 2012-02-13; precipitation: 11.4; temp_max: 7.2; weather: rain",
        "date: 2012-02-14; precipitation: 2.5; temp_max: 6.7; weather: rain",
    ]


def test_the_same_sentence_in_overlapping_chunks_is_quoted_once() -> None:
    repeated = "The Zephyr kettle carries a two year warranty on the heating element."
    passages = [
        (1, f"Parking is free for visitors. {repeated}"),
        (2, f"{repeated} Warranty claims need the original receipt."),
        (3, "Note: the  Zephyr kettle carries a two-year warranty on the heating element."),
    ]
    quotes = pick_sentences("Zephyr kettle warranty", passages, embeddings=HashEmbeddings())
    texts = [q.text for q in quotes]
    assert texts.count(repeated) == 1
    assert not any("two-year" in t for t in texts)  # a near copy is not quoted again


def test_the_best_sentence_comes_first_whichever_passage_ranked_first() -> None:
    passages = [
        (
            1,
            "The FAA proposes to supersede an airworthiness directive for the airplanes. "
            "The agency received many comments on the proposal from the public.",
        ),
        (
            2,
            "Costs are estimated per airplane. "
            "DATES: The FAA must receive comments on this proposed AD by September 21, 2020.",
        ),
        (3, "Comments may be sent by mail or submitted online to the docket."),
    ]
    quotes = pick_sentences(
        "By what date must the FAA receive comments on the proposed AD?",
        passages,
        embeddings=HashEmbeddings(),
    )
    assert quotes[0].number == 2
    assert "September 21, 2020" in quotes[0].text
    assert [q.score for q in quotes] == sorted((q.score for q in quotes), reverse=True)


def test_of_two_alike_sentences_the_one_whose_passage_the_question_names_comes_first() -> None:
    # A Federal Register issue holds several proposed ADs, each with the same DATES line
    # (user trial: the Pilatus AD's was quoted first for a question about the Boeing one).
    dates = "DATES: The FAA must receive comments on this proposed AD by September 21, 2020."
    passages = [
        (1, f"The FAA proposes a new AD for Pilatus Aircraft Ltd. Model PC-12/47E. {dates}"),
        (
            2,
            "The FAA proposes to supersede AD 2018-23-51, which applies to all The Boeing "
            f"Company Model 737-8 and 737-9 (737 MAX) airplanes. {dates}",
        ),
    ]
    quotes = pick_sentences(
        "By what date must the FAA receive comments on the proposed Boeing 737 MAX AD?",
        passages,
        embeddings=HashEmbeddings(),
    )
    assert quotes[0].number == 2 and quotes[0].text == dates
    assert [q.text for q in quotes].count(dates) == 1


def test_a_statement_comes_before_an_enumerated_clause_naming_the_same_words() -> None:
    # User trial: "a. Change in the standing trustee's compensation or percentage fee;"
    # came first for a question the handbook answers in another passage. Scored alike
    # (the clause is 0.002 ahead on its words alone), the statement wins.
    passages = [
        (
            1,
            "The Director may review the following:\n\n"
            "a. A change in the trustee's percentage fee;\n\n"
            "b. Change in the standing trustee's budget;",
        ),
        (2, "A standing trustee's percentage fee is fixed by the Director."),
    ]
    quotes = pick_sentences(
        "Who fixes a Chapter 13 standing trustee's percentage fee?",
        passages,
        embeddings=HashEmbeddings(),
    )
    assert [q.number for q in quotes] == [2, 1]  # the clause is still quoted, after it


def test_sentences_are_ranked_by_the_embeddings_when_given() -> None:
    quotes = pick_sentences(
        "when are plants watered", PASSAGES, embeddings=HashEmbeddings(), max_sentences=1
    )
    assert [(q.number, q.text) for q in quotes] == [
        (3, "Our office plants are watered every Tuesday by the facilities team.")
    ]


def test_answer_is_labelled_and_every_quote_is_cited_verbatim() -> None:
    pieces = list(extractive_answer("Zephyr kettle warranty", PASSAGES))
    assert pieces[0] == EXTRACTIVE_LABEL + "\n\n"
    for quote in pieces[1:]:
        assert re.search(r"“.+” \[\d\]", quote)
    text = "".join(pieces)
    assert "“The Zephyr kettle carries a two year warranty on the heating element.” [1]" in text
    assert 3 not in cited_numbers(text)
    by_number = dict(PASSAGES)
    for match in re.finditer(r"“(.+?)” \[(\d)\]", text):
        assert match.group(1) in normalise_space(by_number[int(match.group(2))])


def test_at_most_two_quotes_per_passage() -> None:
    quotes = pick_sentences("warranty claims receipt kettle", PASSAGES, max_sentences=4)
    numbers = [q.number for q in quotes]
    assert all(numbers.count(n) <= 2 for n in set(numbers))


def test_nothing_related_says_so_after_the_label() -> None:
    pieces = list(extractive_answer("zeppelin", [(1, "Short.")]))
    assert pieces == [EXTRACTIVE_LABEL + "\n\n", EXTRACTIVE_NOTHING]


def test_bracketed_numbers_inside_a_quote_do_not_become_citations() -> None:
    passages = [(2, "Vitamin D lowers fracture risk in older adults [1, 7] according to trials.")]
    text = "".join(extractive_answer("vitamin D fracture risk", passages))
    assert "(1, 7) according to trials.” [2]" in text
    assert cited_numbers(text) == [2]


def test_sentence_vectors_are_embedded_in_one_batch_and_cached() -> None:
    fake = HashEmbeddings()
    vectors = SentenceVectors(fake)
    first = vectors.vectors(["one sentence here.", "another one here.", "one sentence here."])
    assert first.shape == (3, fake.dimension) and (fake.calls, fake.texts_embedded) == (1, 2)
    vectors.vectors(["another one here.", "a third one."])
    assert (fake.calls, fake.texts_embedded) == (2, 3)
    small_batches = HashEmbeddings()
    SentenceVectors(small_batches, batch_size=2).vectors(["a b.", "c d e.", "f."])
    assert (small_batches.calls, small_batches.texts_embedded) == (2, 3)


def test_a_sentence_split_between_two_chunks_is_completed_from_the_neighbours() -> None:
    previous = "Parking is free. The data from the recorders, as summarized in reports 7 of"
    current = (
        "as summarized in reports 7 of the accident, indicated that the system (MCAS) 8 "
        "can command nose-down trim. The FAA must receive comments by"
    )
    following = "The FAA must receive comments by September 21, 2020. Costs follow."
    assert overlap(previous, current) == len("as summarized in reports 7 of")
    widened = widen(current, previous, following)
    assert widened.startswith("The data from the recorders,")
    assert widened.endswith("by September 21, 2020.")
    assert split_sentences(widened) == [
        "The data from the recorders, as summarized in reports 7 of the accident, indicated "
        "that the system (MCAS) 8 can command nose-down trim.",
        "The FAA must receive comments by September 21, 2020.",
    ]
    assert widen(current, None, "unrelated text without overlap.") == current


def test_quotes_can_be_located_in_the_raw_passage_text() -> None:
    quote = "The FAA estimates that this proposed AD affects 73 airplanes of U.S. registry."
    start, end = locate_quote(PDF_COLUMN, quote) or (0, 0)
    assert normalise_space(PDF_COLUMN[start:end]) == quote
    assert locate_quote(PDF_COLUMN, "not in there at all") is None


def test_supporting_sentences_are_the_passage_sentences_closest_to_a_statement() -> None:
    found = supporting_sentences(
        "The kettle has a two year warranty on its heating element.", PASSAGES[0][1]
    )
    assert found == ("The Zephyr kettle carries a two year warranty on the heating element.",)
    assert supporting_sentences("Something else entirely.", PASSAGES[0][1]) == ()


def test_a_pdf_bullet_running_on_and_a_footnote_after_a_full_stop_end_sentences() -> None:
    text = (
        "• Boeing Service Bulletin 737-00-1028 describes\n"
        "procedures for a sensor test. This service\n"
        "information is reasonably available.\n"
        "FAA’s Determination\n"
        "The FAA issued an emergency AD as an interim\n"
        "corrective action.6 The FAA sent it to all\n"
        "known owners of the airplanes.\n"
    )
    assert split_sentences(text) == [
        "Boeing Service Bulletin 737-00-1028 describes procedures for a sensor test.",
        "This service information is reasonably available.",
        "The FAA issued an emergency AD as an interim corrective action.6",
        "The FAA sent it to all known owners of the airplanes.",
    ]
