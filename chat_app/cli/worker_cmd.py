"""`kb worker`: run background jobs (indexing, Notion syncs, removals, the schedule).

Start as many as you like, on this machine or others with the same DATABASE_URL:
they share one queue in PostgreSQL. `kb serve` starts `KB_WORKERS` of them itself.
"""

from __future__ import annotations

import logging
import os
import socket

import typer

from chat_app.cli.context import cli_services
from chat_app.cli.output import console
from chat_app.jobs.runner import run_worker_process


def worker(
    concurrency: int | None = typer.Option(
        None, "--concurrency", "-c", help="Jobs at once (default: KB_WORKER_CONCURRENCY, 1)."
    ),
    name: str | None = typer.Option(None, help="Name in the logs (default: host:pid)."),
) -> None:
    """Run jobs until stopped (Ctrl+C or SIGTERM: running jobs get 10 s to finish, then
    go back to the queue for another worker)."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    with cli_services() as services:
        settings = services.settings
        label = name or f"{socket.gethostname()}:{os.getpid()}"
        console.print(
            f"Worker {label}: loading the embedding model, then running jobs "
            f"({concurrency or settings.worker_concurrency} at once). Ctrl+C stops.",
            highlight=False,
        )
        run_worker_process(
            services, concurrency=concurrency or settings.worker_concurrency, name=label
        )


def register(app: typer.Typer) -> None:
    app.command()(worker)
