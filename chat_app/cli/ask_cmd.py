"""`kb ask "question" --user LOGIN`: one answer from a user's documents, streamed."""

from __future__ import annotations

import asyncio

import typer
from langchain_core.language_models import BaseChatModel
from rich.table import Table

from chat_app.cli.context import runtime, user_id_for
from chat_app.cli.output import console
from chat_app.settings import Settings
from retrieval.chain import Answer, build_answer_chain
from retrieval.llm import build_chat_model
from retrieval.retriever import check_mode


def llm_from_settings(settings: Settings) -> BaseChatModel | None:
    """The configured chat model, or None (extractive answers)."""
    return build_chat_model(
        settings.llm,
        base_url=settings.llm_base_url,
        api_key=settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
        temperature=settings.llm_temperature,
    )


def register(app: typer.Typer) -> None:
    app.command("ask")(ask)


def ask(
    question: str = typer.Argument(..., help="The question, in quotes."),
    user: str = typer.Option(..., "--user", "-u", help="Whose documents to search (login)."),
    mode: str | None = typer.Option(None, help="hybrid, vector or keyword (default: setting)."),
    k: int | None = typer.Option(None, "--k", help="Passages to retrieve (default: setting)."),
) -> None:
    """Answer a question from one user's documents, with numbered sources."""
    with runtime() as rt:
        settings = rt.settings
        chosen_mode = check_mode(mode or settings.retrieval_mode)
        user_id = user_id_for(rt, user)
        chain = build_answer_chain(
            engine=rt.engine,
            embeddings=rt.embeddings,
            llm=llm_from_settings(settings),
            default_mode=chosen_mode,
            default_k=k or settings.top_k,
            score_threshold=settings.score_threshold,
        )

        async def run() -> Answer:
            final: Answer | None = None
            async for item in chain.astream(question, user_id=user_id):
                if isinstance(item, Answer):
                    final = item
                else:
                    console.print(item, end="", markup=False, highlight=False, soft_wrap=True)
            console.print()
            assert final is not None
            return final

        answer = asyncio.run(run())
    if answer.standalone_question != question.strip():
        console.print(f"[dim](searched for: {answer.standalone_question})[/]")
    if not answer.sources:
        return
    table = Table("#", "source", "where", "snippet", title="Sources", show_lines=True)
    for source in answer.sources:
        where = source.url or source.source_id
        if source.location:
            where += f" ({source.location})"
        elif source.page is not None:
            where += f" (page {source.page})"
        table.add_row(str(source.number), source.title, where, source.snippet)
    console.print(table)
