"""Prometheus metrics of one kb process, and the `/metrics` route that exposes them.

Off by default: `/metrics` answers 404 until `KB_METRICS_TOKEN` is set, and then only
to `Authorization: Bearer <token>` (401 otherwise). A token rather than a second
port: one port per process is what the proxy, the probes and the tests already know,
and a scraper reaching each process directly only needs the header.

Two kinds of figures:

- this process's own, counted where they happen (the answer handler, the upload
  handler, the login): `kb_question_seconds{stage, mode}` (histograms of retrieval,
  first token and whole answer), `kb_answers_total{mode, outcome}` (sourced,
  unsourced, error), `kb_uploads_total`, `kb_login_failures_total{reason}`, and at
  scrape time its database pools (`kb_db_pool_*{pool}`) and read replicas
  (`kb_replica_usable`, `kb_replica_lag_seconds`, `kb_replica_lag_bytes`,
  `kb_reads_total{target, reason, kind}`). Sum these across processes;
- the deployment's, read from the database at scrape time because the work happens
  in `kb worker` processes: jobs by kind and status (`kb_jobs`), procrastinate's
  queue (`kb_job_queue`), ingestion over the last hour (`kb_ingest_chunks_last_hour`,
  `kb_ingest_chunks_per_second`), Notion syncs of the last day by outcome and 429
  answers (`kb_notion_syncs_last_day`, `kb_notion_rate_limited_last_day`). Every
  process reports the same values: aggregate them with max(), not sum().
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException, Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine

from db import stats

if TYPE_CHECKING:
    from chat_app.services import Services
    from retrieval.chain import Answer

__all__ = ["METRICS_ROUTE", "Metrics", "install_metrics_route"]

log = logging.getLogger("kb.metrics")

METRICS_ROUTE = "/metrics"
# Seconds: a search takes milliseconds, an LLM answer up to a minute.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """The counters and histograms of one process, in their own registry (tests make
    several `Services` in one process; the global registry would refuse the second)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.question_seconds = Histogram(
            "kb_question_seconds",
            "Question latency by stage: retrieval (the search), first_token (until the "
            "first text), answer (the whole answer)",
            ["stage", "mode"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.answers = Counter(
            "kb_answers",
            "Answers by search mode and outcome: sourced, unsourced (no citation) or error",
            ["mode", "outcome"],
            registry=r,
        )
        self.uploads = Counter(
            "kb_uploads", "Files received through the chat and queued for indexing", registry=r
        )
        self.login_failures = Counter(
            "kb_login_failures",
            "Refused logins: wrong_credentials, throttled, or oauth (no enabled account)",
            ["reason"],
            registry=r,
        )
        self._live = _LiveCollector()
        r.register(self._live)

    def watch(self, services: Services) -> None:
        """Read `services`' pools, replicas and database figures at each scrape."""
        self._live.services = services

    # -- the seams ---------------------------------------------------------------------

    def observe_answer(self, answer: Answer, *, mode: str) -> None:
        """One answered question (the handler calls this with the chain's `Answer`)."""
        mode = answer.mode or mode
        if answer.timings is not None:
            self.question_seconds.labels("retrieval", mode).observe(answer.timings.retrieval)
            if answer.timings.first_token is not None:
                self.question_seconds.labels("first_token", mode).observe(
                    answer.timings.first_token
                )
            self.question_seconds.labels("answer", mode).observe(answer.timings.total)
        self.answers.labels(mode, "sourced" if answer.sources else "unsourced").inc()

    def answer_failed(self, *, mode: str) -> None:
        self.answers.labels(mode, "error").inc()

    def uploaded(self, files: int) -> None:
        self.uploads.inc(files)

    def login_failed(self, reason: str) -> None:
        self.login_failures.labels(reason).inc()

    # -- exposition --------------------------------------------------------------------

    def render(self) -> bytes:
        """The text exposition format (blocking: the live collector queries the database)."""
        return generate_latest(self.registry)


class _LiveCollector(Collector):
    """Figures read at scrape time from the process's `Services`."""

    def __init__(self) -> None:
        self.services: Services | None = None

    def collect(self) -> Iterator[Metric]:
        services = self.services
        if services is None:
            return
        yield from _pool_metrics(services)
        yield from _replica_metrics(services)
        try:
            yield from _database_metrics(services)
        except Exception as error:  # a scrape must not fail because the database did
            log.warning("metrics: could not read the database figures: %s", error)


def _pool_metrics(services: Services) -> Iterator[Metric]:
    in_use = GaugeMetricFamily(
        "kb_db_pool_in_use", "Connections checked out of the pool", labels=["pool"]
    )
    idle = GaugeMetricFamily("kb_db_pool_idle", "Connections idle in the pool", labels=["pool"])
    overflow = GaugeMetricFamily(
        "kb_db_pool_overflow", "Connections open beyond the pool size", labels=["pool"]
    )
    limit = GaugeMetricFamily(
        "kb_db_pool_limit", "Most connections the pool may open (size + overflow)", labels=["pool"]
    )
    for name, engine in services.opened_engines().items():
        pool: Any = (engine.sync_engine if isinstance(engine, AsyncEngine) else engine).pool
        if not hasattr(pool, "checkedout"):  # NullPool and friends keep no connections
            continue
        in_use.add_metric([name], pool.checkedout())
        idle.add_metric([name], pool.checkedin())
        overflow.add_metric([name], max(0, pool.overflow()))
        limit.add_metric([name], pool.size() + max(0, getattr(pool, "_max_overflow", 0)))
    yield from (in_use, idle, overflow, limit)


def _replica_metrics(services: Services) -> Iterator[Metric]:
    router = services.opened_read_router()
    if router is None:
        return
    usable = GaugeMetricFamily(
        "kb_replica_usable", "1 when reads may use the replica", labels=["replica"]
    )
    lag = GaugeMetricFamily(
        "kb_replica_lag_seconds", "How far the replica is behind the primary", labels=["replica"]
    )
    lag_bytes = GaugeMetricFamily(
        "kb_replica_lag_bytes", "WAL bytes the replica has not replayed", labels=["replica"]
    )
    for state in router.states:
        usable.add_metric([state.name], 1.0 if state.usable else 0.0)
        if state.lag_seconds is not None:
            lag.add_metric([state.name], state.lag_seconds)
        if state.lag_bytes is not None:
            lag_bytes.add_metric([state.name], state.lag_bytes)
    reads = CounterMetricFamily(
        "kb_reads",
        "Searches and history reads by server (primary or a replica), why, and kind",
        labels=["target", "reason", "kind"],
    )
    for (target, reason, kind), count in sorted(router.reads.items()):
        reads.add_metric([target, reason, kind], count)
    yield from (usable, lag, lag_bytes, reads)


def _database_metrics(services: Services) -> Iterator[Metric]:
    with services.engine.connect() as connection:
        queue = stats.queue_counts(connection)
        jobs = stats.job_counts(connection)
        rate = stats.ingest_rate(connection, seconds=3600)
        notion = stats.notion_outcomes(connection, seconds=86400)
    if queue is not None:
        family = GaugeMetricFamily(
            "kb_job_queue",
            "procrastinate jobs waiting (todo) or running (doing), by queue",
            labels=["queue", "status"],
        )
        for (name, status), count in queue.items():
            family.add_metric([name, status], count)
        yield family
    by_kind = GaugeMetricFamily(
        "kb_jobs",
        "Jobs by kind and status (finished ones until their retention ends)",
        labels=["kind", "status"],
    )
    for (kind, status), count in jobs.items():
        by_kind.add_metric([kind, status], count)
    yield by_kind
    yield GaugeMetricFamily(
        "kb_ingest_chunks_last_hour",
        "Chunks written by indexing jobs that finished in the last hour",
        value=rate.chunks,
    )
    yield GaugeMetricFamily(
        "kb_ingest_chunks_per_second",
        "Chunks written per second of indexing job time, last hour (0: none ran)",
        value=rate.chunks_per_second or 0.0,
    )
    syncs = GaugeMetricFamily(
        "kb_notion_syncs_last_day",
        "Notion syncs that ended in the last 24 h, by outcome",
        labels=["outcome"],
    )
    for outcome in ("success", "partial", "failed"):
        syncs.add_metric([outcome], notion.runs.get(outcome, 0))
    yield syncs
    yield GaugeMetricFamily(
        "kb_notion_rate_limited_last_day",
        "429 (rate limited) answers from Notion during syncs of the last 24 h",
        value=notion.rate_limited,
    )


def install_metrics_route(
    app: FastAPI,
    services: Callable[[], Services | None],
    add_route: Callable[[FastAPI, str, Callable[..., Any], str], None],
) -> None:
    """`GET /metrics` for the process's `Services` (404 until a token is configured)."""

    async def metrics(request: Request) -> Response:
        current = services()
        token = current.settings.metrics_token if current is not None else None
        if current is None or token is None:
            raise HTTPException(status_code=404, detail="Not Found")
        expected = f"Bearer {token.get_secret_value()}".encode()
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return Response(status_code=401, content="", headers={"WWW-Authenticate": "Bearer"})
        router = current.opened_read_router()
        if router is not None:
            await router.refresh_if_stale()
        body = await asyncio.to_thread(current.metrics.render)
        return Response(
            content=body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"}
        )

    add_route(app, METRICS_ROUTE, metrics, "kb_metrics")
