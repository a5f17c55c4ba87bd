"""Commands that queue jobs wait for them with a progress bar (unless `--no-wait`).

Without a live worker (`kb worker`, or `kb serve`'s own) the command runs one in its
own process until its jobs are done, and says so: on a single machine `kb ingest`
works as it always did, and with workers running the work goes to them.
"""

from __future__ import annotations

from collections.abc import Sequence

from chat_app.cli.output import console, progress_bar
from chat_app.jobs.describe import job_line
from chat_app.jobs.runner import wait_for_jobs
from chat_app.services import Services
from db.jobs import JobRow

__all__ = ["wait_with_progress"]


def wait_with_progress(
    services: Services, job_ids: Sequence[int], *, what: str
) -> dict[int, JobRow]:
    """Wait for the jobs, one bar step per finished job; returns their final rows."""
    queue = services.job_queue()
    run_here = queue.live_workers() == 0
    if run_here:
        with console.status("No worker is running: loading the embedding model here..."):
            services.embeddings  # noqa: B018 (load before the bar starts)
    else:
        console.print(f"Queued {len(job_ids)} job(s) for the running workers.", highlight=False)
    ended: set[int] = set()
    with progress_bar() as bar:
        task = bar.add_task(what, total=len(job_ids))

        def show(row: JobRow) -> None:
            if row.finished and row.id not in ended:
                ended.add(row.id)
                bar.advance(task)
            elif not row.finished:
                bar.update(task, description=f"{row.title[:40]}: {job_line(row)}"[:90])

        rows = services.run(wait_for_jobs(services, job_ids, on_change=show, run_here=run_here))
        bar.update(task, description="Done")
    return rows
