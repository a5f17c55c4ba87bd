"""`kb eval beir DIR`: retrieval quality on a BEIR-format dataset; `kb eval qa FILE`:
answer quality on questions with gold answers."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

import typer
from rich.table import Table

from chat_app.cli.context import cli_services, user_id_for
from chat_app.cli.output import console, progress_bar
from chat_app.settings import load_settings
from db.chunks import list_sources
from db.scoped import user_scope
from db.spaces import readable_spaces
from ingest.eval_corpus import index_eval_corpus
from retrieval.answer_eval import evaluate_answers, load_qa
from retrieval.embeddings import check_backend
from retrieval.evaluation import QueryVectors, Scores, evaluate_mode, load_beir
from retrieval.passages import MODES, check_mode
from retrieval.retriever import Retriever

app = typer.Typer(help="Measure retrieval and answer quality.", no_args_is_help=True)


@contextmanager
def _bar(description: str) -> Iterator[Callable[[int, int], None]]:
    with progress_bar(transient=True, remaining=True) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


@app.command("beir")
def beir(
    directory: Path = typer.Argument(..., help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/."),
    mode: str = typer.Option("all", help="hybrid, vector, keyword or all."),
    k: int = typer.Option(100, "--k", help="Passages retrieved per query (Recall@100 needs 100)."),
    limit_queries: int | None = typer.Option(None, help="Evaluate only the first N queries."),
    split: str = typer.Option("test", help="Which qrels file to use."),
    anchors: bool = typer.Option(
        True, "--anchors/--no-anchors", help="Also measure exact dense search and BM25."
    ),
    candidates: int | None = typer.Option(
        None, help="Hybrid: candidates taken from each side before fusion (default 4k, >= 40)."
    ),
    ignore_identical_ids: bool = typer.Option(
        False,
        "--ignore-identical-ids",
        help="Drop a document whose id equals the query's (BEIR's protocol for ArguAna).",
    ),
    json_file: Path | None = typer.Option(
        None, "--json", help="Also write the table as JSON to this file ('-' for stdout)."
    ),
    backend: str | None = typer.Option(
        None,
        help="Embedding backend for this run: torch, onnx or onnx-int8 (default: "
        "KB_EMBEDDING_BACKEND). A change of backend re-indexes the corpus.",
    ),
) -> None:
    """Index the dataset once into the user eval:<name>, then score every judged query.

    Prints nDCG@10, Recall@10 and Recall@100 for each mode, next to exact (brute-force)
    dense search and BM25 measured in the same run. Use `--split train` for tuning
    runs and report the test split.
    """
    modes = list(MODES) if mode == "all" else [mode]
    settings = load_settings()
    if backend is not None:
        settings = settings.model_copy(update={"embedding_backend": check_backend(backend)})
    dataset = load_beir(directory, split=split, limit_queries=limit_queries)
    console.print(
        f"[bold]{dataset.name}[/]: {len(dataset.corpus):,} documents, "
        f"{len(dataset.queries):,} judged queries ({split}); embedding backend "
        f"{settings.embedding_backend}."
    )
    with cli_services(settings=settings) as services:
        with _bar("Embedding the corpus") as progress:
            report = index_eval_corpus(
                engine=services.engine,
                embeddings=services.embeddings,
                name=dataset.name,
                corpus=dataset.corpus,
                fingerprint=dataset.fingerprint,
                progress=progress,
            )
        if report.embedded:
            console.print(f"Indexed {report.embedded:,} documents in {report.seconds:.0f} s.")
        else:
            console.print("Corpus already indexed (same fingerprint): no embedding work.")
        embeddings = QueryVectors(services.embeddings, list(dataset.queries.values()))

        async def search_every_mode() -> list[Scores]:
            retriever = Retriever(engine=services.read_engine, embeddings=embeddings)
            scores = []
            for name in modes:
                with _bar(f"Searching ({name})") as progress:
                    found, _ = await evaluate_mode(
                        retriever=retriever,
                        user_id=report.user_id,
                        space_id=report.space_id,
                        dataset=dataset,
                        mode=name,
                        k=k,
                        candidates=candidates,
                        ignore_identical_ids=ignore_identical_ids,
                        progress=progress,
                    )
                scores.append(found)
            return scores

        results = services.run(search_every_mode())
        if anchors:
            from retrieval.eval_anchors import bm25_anchor, exact_dense_anchor

            results.append(
                exact_dense_anchor(
                    engine=services.engine,
                    embeddings=embeddings,
                    user_id=report.user_id,
                    space_id=report.space_id,
                    dataset=dataset,
                    k=k,
                    ignore_identical_ids=ignore_identical_ids,
                )
            )
            results.append(
                bm25_anchor(dataset=dataset, k=k, ignore_identical_ids=ignore_identical_ids)
            )
    table = Table(
        "retriever",
        "nDCG@10",
        "Recall@10",
        f"Recall@{min(k, 100)}",
        "ms/query",
        title=f"{dataset.name} ({len(dataset.queries)} queries, k={k}, "
        f"{settings.embedding_backend})",
    )
    for s in results:
        table.add_row(
            s.name,
            f"{s.ndcg_10:.4f}",
            f"{s.recall_10:.4f}",
            f"{s.recall_100:.4f}",
            f"{s.ms_per_query:.1f}",
        )
    console.print(table)
    if json_file is not None:
        report_json = json.dumps(
            {
                "dataset": dataset.name,
                "split": split,
                "queries": len(dataset.queries),
                "k": k,
                "ignore_identical_ids": ignore_identical_ids,
                "embedding_backend": settings.embedding_backend,
                "corpus_sha256": dataset.fingerprint,
                "results": [dataclasses.asdict(s) for s in results],
            },
            indent=2,
        )
        if str(json_file) == "-":
            typer.echo(report_json)
        else:
            json_file.write_text(report_json + "\n", encoding="utf-8")


@app.command("qa")
def qa(
    file: Path = typer.Argument(..., help="JSON lines: question, answer(s), doc, passage."),
    user: str = typer.Option(..., "--user", "-u", help="Whose documents answer (login)."),
    mode: str | None = typer.Option(None, help="hybrid, vector or keyword (default: setting)."),
    k: int | None = typer.Option(None, "--k", help="Passages per answer (default: setting)."),
) -> None:
    """Ask every question of FILE as USER and check the quotes against the gold answers.

    The documents must be ingested for that user first (`kb ingest DOCS --user LOGIN`).
    Prints, per question, whether the first quoted sentence and any quote hold the gold
    answer, then the shares of both, the "I don't know" rate and the mean latency.
    """
    items = load_qa(file)
    chosen_mode = check_mode(mode) if mode else None
    with cli_services() as services:
        user_id = user_id_for(services, user)
        with user_scope(services.engine, user_id) as connection:
            spaces = [s.id for s in readable_spaces(connection, user_id=user_id)]
            indexed = {s.source_id for s in list_sources(connection, space_ids=spaces)}
        # A file is indexed under the path it was ingested by ("docs/report.pdf"); the
        # questions name the file.
        indexed |= {PurePosixPath(source).name for source in indexed}
        missing = sorted({i.doc for i in items if i.doc and i.doc not in indexed})
        if missing:
            console.print(
                f"[yellow]Not ingested for {user}:[/] {', '.join(missing)} "
                f"(run `kb ingest PATH... --user {user}` first); their questions will fail."
            )
        chain = services.answer_chain()
        with _bar("Asking") as progress:
            report = services.run(
                evaluate_answers(
                    chain, items, user_id=user_id, mode=chosen_mode, k=k, progress=progress
                )
            )
    table = Table(
        "id", "first quote", "any quote", "seconds", "first quote (start)", title=file.name
    )
    for r in report.results:
        first = r.quotes[0] if r.quotes else ("I don't know" if r.dont_know else "")
        table.add_row(
            r.item.id,
            "yes" if r.first_hit else "no",
            "yes" if r.any_hit else "no",
            f"{r.seconds:.2f}",
            first[:70] + ("…" if len(first) > 70 else ""),
        )
    console.print(table)
    n = len(report.results)
    console.print(
        f"gold answer in the first quote: [bold]{report.first_rate:.0%}[/] "
        f"({sum(r.first_hit for r in report.results)}/{n}) · in any quote: "
        f"[bold]{report.any_rate:.0%}[/] ({sum(r.any_hit for r in report.results)}/{n}) · "
        f'"I don\'t know": {report.dont_know_rate:.0%} · mean latency '
        f"{report.mean_seconds:.2f} s"
    )
