"""`kb eval beir DIR`: retrieval quality on a BEIR-format dataset."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.table import Table

from chat_app.cli.context import cli_services
from chat_app.cli.output import console, progress_bar
from chat_app.settings import load_settings
from ingest.eval_corpus import index_eval_corpus
from retrieval.embeddings import check_backend
from retrieval.evaluation import QueryVectors, Scores, evaluate_mode, load_beir
from retrieval.passages import MODES
from retrieval.retriever import Retriever

app = typer.Typer(help="Measure retrieval quality.", no_args_is_help=True)


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
    backend: str | None = typer.Option(
        None,
        help="Embedding backend for this run: torch, onnx or onnx-int8 (default: "
        "KB_EMBEDDING_BACKEND). A change of backend re-indexes the corpus.",
    ),
) -> None:
    """Index the dataset once into the user eval:<name>, then score every judged query.

    Prints nDCG@10, Recall@10 and Recall@100 for each mode, next to exact (brute-force)
    dense search and BM25 measured in the same run.
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
                )
            )
            results.append(bm25_anchor(dataset=dataset, k=k))
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
