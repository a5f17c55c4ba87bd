"""Every prompt and fixed sentence the answer chain uses, in one readable place."""

from __future__ import annotations

import re

from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder

__all__ = [
    "ANSWER_PROMPT",
    "CONDENSE_PROMPT",
    "DONT_KNOW",
    "EXTRACTIVE_LABEL",
    "EXTRACTIVE_NOTHING",
    "OVERVIEW_PROMPT",
    "format_passages",
    "neutralize_citations",
]

_BRACKETED_NUMBERS = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


def neutralize_citations(text: str) -> str:
    """ "[12]" -> "(12)": a passage's own references (papers cite that way) must not be
    confused with our citation markers, in the prompt or in a quote."""
    return _BRACKETED_NUMBERS.sub(r"(\1)", text)


DONT_KNOW = "I don't know from your documents."

EXTRACTIVE_LABEL = (
    "No language model is configured, so here are the most relevant passages from your documents:"
)
EXTRACTIVE_NOTHING = "(No sentence of the retrieved passages matches the question closely.)"

CONDENSE_PROMPT = ChatPromptTemplate.from_messages(
    [
        (
            "system",
            "You rewrite the user's last question so that it can be understood without "
            "the conversation. Replace pronouns and references such as 'it', 'that one' "
            "or 'the second' with what they mean in the conversation. Keep the user's "
            "language and wording otherwise. If the question already stands alone, "
            "return it unchanged. Reply with the question only: no answer, no preamble, "
            "no quotes.",
        ),
        MessagesPlaceholder("history"),
        ("human", "Rewrite this follow-up as a standalone question:\n{question}"),
    ]
)

ANSWER_PROMPT = ChatPromptTemplate.from_messages(
    [
        (
            "system",
            "You answer questions using ONLY the numbered passages below, which come "
            "from the user's own documents.\n"
            "Rules:\n"
            "- Cite every statement with the number of the passage it comes from, in "
            "square brackets, like [1] or [2][3], right after the statement.\n"
            "- Use no knowledge beyond the passages. If they do not contain the answer, "
            f'reply exactly: "{DONT_KNOW}"\n'
            "- Be concise. Answer in the language of the question.\n\n"
            "Passages:\n{passages}",
        ),
        ("human", "{question}"),
    ]
)


def format_passages(passages: list[tuple[int, str, str]]) -> str:
    """`[(number, title, text)]` -> the numbered block the answer prompt shows."""
    blocks = []
    for number, title, text in passages:
        heading = f"[{number}] {title}".rstrip()
        blocks.append(f"{heading}\n{neutralize_citations(text.strip())}")
    return "\n\n".join(blocks)


OVERVIEW_PROMPT = ChatPromptTemplate.from_messages(
    [
        (
            "system",
            "The user asks for an overview of their own documents. Below are the key "
            "sentences of each document, numbered. Write a short overview: what each "
            "document is about, in one or two sentences each, and what they have in "
            "common if anything.\n"
            "Rules:\n"
            "- Cite every statement with the number of the sentence it comes from, in "
            "square brackets, like [1] or [2][3].\n"
            "- Use only the sentences below. Answer in the language of the question.\n\n"
            "{passages}",
        ),
        ("human", "{question}"),
    ]
)
