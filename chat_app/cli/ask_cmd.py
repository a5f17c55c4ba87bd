"""`kb ask "question" --user LOGIN`: one answer from a user's documents, streamed."""

from __future__ import annotations

import typer
from rich.table import Table

from chat_app.cli.context import cli_services, space_for, user_id_for
from chat_app.cli.output import console
from retrieval.chain import Answer
from retrieval.passages import check_mode


def register(app: typer.Typer) -> None:
    app.command("ask")(ask)


def ask(
    question: str = typer.Argument(..., help="The question, in quotes."),
    user: str = typer.Option(..., "--user", "-u", help="Whose documents to search (login)."),
    mode: str | None = typer.Option(None, help="hybrid, vector or keyword (default: setting)."),
    k: int | None = typer.Option(None, "--k", help="Passages to retrieve (default: setting)."),
    space: str | None = typer.Option(
        None, "--space", help="Search only this shared space (default: every readable space)."
    ),
) -> None:
    """Answer a question from the documents a user can read, with numbered sources."""
    with cli_services() as services:
        chosen_mode = check_mode(mode) if mode else None
        user_id = user_id_for(services, user)
        spaces = [space_for(services, user_id, space).id] if space else None
        chain = services.answer_chain()

        async def run() -> Answer:
            final: Answer | None = None
            stream = chain.astream(question, user_id=user_id, spaces=spaces, mode=chosen_mode, k=k)
            async for item in stream:
                if isinstance(item, Answer):
                    final = item
                else:
                    console.print(item, end="", markup=False, highlight=False, soft_wrap=True)
            console.print()
            assert final is not None
            return final

        answer = services.run(run())
    if answer.standalone_question != question.strip():
        console.print(f"[dim](searched for: {answer.standalone_question})[/]")
    if not answer.sources:
        return
    table = Table("#", "source", "where", "quoted / snippet", title="Sources", show_lines=True)
    for source in answer.sources:
        where = source.url or source.source_id
        if source.location:
            where += f" ({source.location})"
        elif source.page is not None:
            where += f" (page {source.page})"
        shown = "\n".join(f"“{q}”" for q in source.quotes) or source.snippet
        table.add_row(str(source.number), source.title, where, shown)
    console.print(table)
