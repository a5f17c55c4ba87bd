"""Streaming read replicas: which server one read runs on.

`ReadRouter.route(user_id)` answers with the primary or one of the replicas:

- a replica is used only while it is reachable, is a standby, and is at most
  `max_lag_seconds` behind the primary; otherwise it is skipped (one log line when
  that changes, not one per query) and, with none left, reads go to the primary;
- read-your-writes: a person whose own writes are noted in `read_positions` (see
  `db.read_positions`) reads from a replica only once that replica has replayed past
  their position. If none has, the read waits up to `wait_seconds` for one to get
  there (polling the replicas' replay position), then goes to the primary. Waiting
  keeps the primary free of the reads replicas exist for (on a healthy replica the
  gap is milliseconds); the bound keeps a slow replica from costing a person more
  than that before the primary answers;
- a read that fails on a replica is retried on the primary by the caller
  (`fallback`), and the replica is skipped until a check finds it healthy again.

Lag is measured against the primary, not with the replica's own clock: every check
samples the primary's WAL position, and a replica's lag is the age of the oldest
sample it has not replayed yet. That stays right when the primary is idle (where
`now() - pg_last_xact_replay_timestamp()` keeps growing) and when the replica has
lost its connection to the primary (where receive == replay looks "caught up").

Checks run at most every `check_seconds`, in the background of the reads that need
them (the first one is awaited), and on demand (`refresh`, e.g. by a metrics scrape).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from db.read_positions import note_writes_async, parse_lsn, position_of

__all__ = [
    "PRIMARY",
    "ReadRouter",
    "Replica",
    "ReplicaState",
    "Route",
    "is_connection_error",
    "replica_name",
]

log = logging.getLogger("kb.replicas")

PRIMARY = "primary"
# The flushed position: only flushed WAL is streamed, so WAL still in the primary's
# buffers (a long transaction being written) is not counted as the replica's lag.
_PRIMARY_LSN = sa.text("SELECT pg_current_wal_flush_lsn()::text")
_REPLAYED = sa.text("SELECT pg_last_wal_replay_lsn()::text")
# How often a read waiting for its own writes asks the replicas how far they are.
_WAIT_POLL_SECONDS = 0.02
_PROBE = sa.text(
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,"
    " extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8"
)
# Primary samples kept for lag measurement; a replica behind all of them is at least
# as old as the oldest, which is kept longer than any lag limit.
_MAX_SAMPLES = 4096
# WAL a replica may be "behind" and still count as caught up in time. The primary's
# flushed position can end inside a record (a long transaction, pgvector's index
# records of several kB) that the replica cannot replay until its end is flushed; while
# the writer is busy elsewhere (embedding the next batch) that fragment made a
# replica a few kB behind look seconds behind (measured: up to 10.6 s with 7 kB behind).
# Read-your-writes compares exact commit positions and is not affected.
LAG_SLACK_BYTES = 64 * 1024


def replica_name(url: str) -> str:
    """A replica as logs and metrics name it: host:port/database, no credentials."""
    parsed = make_url(url)
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database or ''}"


def is_connection_error(error: BaseException) -> bool:
    """Whether `error` means the server is gone (rather than this one query failing)."""
    if isinstance(error, (OSError, TimeoutError, sa.exc.DisconnectionError)):
        return True
    if isinstance(error, sa.exc.DBAPIError):
        if error.connection_invalidated:
            return True
        state = getattr(error.orig, "sqlstate", None)
        # No SQLSTATE: the driver lost the connection; 08: connection exception;
        # 57P01-03: the server is shutting down or starting.
        return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")
    return False


@dataclass(eq=False)
class Replica:
    """One configured replica: its name and the (scoped) read engine on it."""

    name: str
    url: str
    engine: AsyncEngine


@dataclass(frozen=True)
class ReplicaState:
    """What the last check (or a failed read) found out about one replica."""

    name: str
    usable: bool
    reason: str  # ok | unreachable | not a standby | lagging | failed
    detail: str = ""
    replay_lsn: int | None = None
    lag_seconds: float | None = None
    lag_bytes: int | None = None
    checked_at: float = 0.0


@dataclass(frozen=True)
class Route:
    """Where one read goes, and why."""

    target: str  # PRIMARY or a replica's name
    engine: AsyncEngine
    reason: str  # replica | replica_waited | no_replica | read_your_writes | replica_failed
    replica: Replica | None = None
    kind: str = "search"  # what is read: search | history


class ReadRouter:
    """Chooses the server of each read among the primary and its replicas.

    `primary` is the primary's read engine (what reads use without replicas);
    `control` a small plain engine on the primary for WAL positions and
    `read_positions`. The router owns `control` and the replicas' engines.
    """

    def __init__(
        self,
        *,
        primary: AsyncEngine,
        control: AsyncEngine,
        replicas: Sequence[Replica],
        max_lag_seconds: float,
        check_seconds: float,
        wait_seconds: float = 0.5,
        probe_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.primary = primary
        self.control = control
        self.replicas = list(replicas)
        self.max_lag_seconds = max_lag_seconds
        self.check_seconds = check_seconds
        self.wait_seconds = wait_seconds
        self.probe_timeout = probe_timeout
        self._clock = clock
        self._states: dict[str, ReplicaState] = {}
        self._samples: deque[tuple[int, float]] = deque(maxlen=_MAX_SAMPLES)
        self._last_check: float | None = None
        self._task: asyncio.Task[list[ReplicaState]] | None = None
        self._turn = itertools.count()
        #: Reads routed so far, by (target, reason, kind): the metrics read this.
        self.reads: Counter[tuple[str, str, str]] = Counter()
        #: Reads waiting now for a replica to replay their person's writes.
        self.waiting = 0

    @property
    def states(self) -> list[ReplicaState]:
        """The latest state of every replica, in configuration order (unchecked ones
        as unusable)."""
        return [
            self._states.get(r.name) or ReplicaState(r.name, False, "unchecked")
            for r in self.replicas
        ]

    # -- routing ----------------------------------------------------------------------

    async def route(self, user_id: uuid.UUID | None, *, kind: str = "search") -> Route:
        """Where a read by `user_id` goes now (None: nobody's own writes matter);
        `kind` only labels the count."""
        await self._ensure_checked()
        usable = [r for r in self.replicas if self._usable(r.name)]
        if not usable:
            return self._primary("no_replica", kind)
        reason = "replica"
        if user_id is not None:
            position = await self._position(user_id)
            if position is not None:
                caught_up = self._replayed(usable, position)
                if not caught_up:
                    caught_up = await self._wait_for(usable, position)
                    reason = "replica_waited"
                if not caught_up:
                    return self._primary("read_your_writes", kind)
                usable = caught_up
        replica = usable[next(self._turn) % len(usable)]
        return self._count(Route(replica.name, replica.engine, reason, replica, kind))

    def fallback(self, route: Route, error: BaseException) -> Route:
        """The primary, for a read that failed on `route`'s replica; a replica that has
        gone away is skipped from now on, until a check finds it healthy."""
        if route.replica is not None and is_connection_error(error):
            name = route.replica.name
            current = self._states.get(name) or ReplicaState(name, True, "ok")
            self._set(
                replace(
                    current,
                    usable=False,
                    reason="failed",
                    detail=_one_line(error),
                    checked_at=self._clock(),
                )
            )
        return self._primary("replica_failed", route.kind)

    async def note_writes(self, user_ids: Iterable[uuid.UUID]) -> int | None:
        """Record the primary's position for `user_ids` after their writes committed."""
        async with self.control.begin() as connection:
            return await note_writes_async(connection, user_ids)

    def _replayed(self, replicas: Sequence[Replica], position: int) -> list[Replica]:
        return [r for r in replicas if (self._states[r.name].replay_lsn or 0) >= position]

    async def _wait_for(self, replicas: Sequence[Replica], position: int) -> list[Replica]:
        """The replicas that replay past `position` within `wait_seconds` (polled)."""
        deadline = self._clock() + self.wait_seconds
        self.waiting += 1
        try:
            while self._clock() < deadline:
                await asyncio.sleep(_WAIT_POLL_SECONDS)
                await asyncio.gather(*(self._poll_replay(r) for r in replicas))
                caught_up = [r for r in self._replayed(replicas, position) if self._usable(r.name)]
                if caught_up:
                    return caught_up
            return []
        finally:
            self.waiting -= 1

    async def _poll_replay(self, replica: Replica) -> None:
        """Update `replica`'s replay position (a failure is left to the next check)."""
        try:
            async with asyncio.timeout(self.probe_timeout), replica.engine.connect() as conn:
                replayed = (await conn.execute(_REPLAYED)).scalar()
        except Exception:
            return
        current = self._states.get(replica.name)
        if replayed and current is not None:
            self._states[replica.name] = replace(current, replay_lsn=parse_lsn(replayed))

    def _usable(self, name: str) -> bool:
        state = self._states.get(name)
        return state is not None and state.usable

    def _primary(self, reason: str, kind: str) -> Route:
        return self._count(Route(PRIMARY, self.primary, reason, None, kind))

    def _count(self, route: Route) -> Route:
        self.reads[(route.target, route.reason, route.kind)] += 1
        return route

    async def _position(self, user_id: uuid.UUID) -> int | None:
        async with self.control.connect() as connection:
            return await position_of(connection, user_id)

    # -- checks -----------------------------------------------------------------------

    async def _ensure_checked(self) -> None:
        if self._last_check is None:
            await self.refresh()
        elif self._clock() - self._last_check >= self.check_seconds and (
            self._task is None or self._task.done()
        ):
            # Readers keep the last known states meanwhile: a replica that went away
            # costs the check its connect timeout, never a question.
            self._task = asyncio.get_running_loop().create_task(self.refresh())

    async def refresh_if_stale(self) -> None:
        """Check now unless a check ran within `check_seconds` (metrics scrapes)."""
        if self._last_check is None or self._clock() - self._last_check >= self.check_seconds:
            await self.refresh()

    async def refresh(self) -> list[ReplicaState]:
        """Sample the primary's WAL position, then check every replica against it."""
        started = self._clock()
        self._last_check = started
        try:
            async with self.control.connect() as connection:
                lsn = (await connection.execute(_PRIMARY_LSN)).scalar_one()
            self._samples.append((parse_lsn(lsn), started))
        except Exception as error:  # the primary's outage is reported by whoever needs it
            log.debug("could not sample the primary's WAL position: %s", _one_line(error))
        states = await asyncio.gather(*(self._probe(r) for r in self.replicas))
        for state in states:
            self._set(state)
        return list(states)

    async def _probe(self, replica: Replica) -> ReplicaState:
        try:
            async with asyncio.timeout(self.probe_timeout), replica.engine.connect() as conn:
                standby, replay, replay_age = (await conn.execute(_PROBE)).one()
        except Exception as error:
            return ReplicaState(
                replica.name, False, "unreachable", _one_line(error), checked_at=self._clock()
            )
        now = self._clock()
        if not standby or replay is None:
            return ReplicaState(
                replica.name,
                False,
                "not a standby",
                "it accepts writes (promoted, or the primary itself)",
                checked_at=now,
            )
        position = parse_lsn(replay)
        lag = self._lag(position, replay_age, now)
        newest = self._samples[-1][0] if self._samples else None
        behind = max(0, newest - position) if newest is not None else None
        if lag > self.max_lag_seconds:
            return ReplicaState(
                replica.name,
                False,
                "lagging",
                f"{lag:.1f} s behind the primary (limit {self.max_lag_seconds:g} s)",
                position,
                lag,
                behind,
                now,
            )
        return ReplicaState(replica.name, True, "ok", "", position, lag, behind, now)

    def _lag(self, replayed: int, replay_age: float | None, now: float) -> float:
        """Seconds since the primary held WAL this replica has not replayed yet."""
        for index, (lsn, sampled) in enumerate(self._samples):  # oldest first
            if lsn > replayed + LAG_SLACK_BYTES:
                if index == 0:
                    # Behind even the oldest sample: it may be older still, as the
                    # replica's own clock says (only an over-estimate on an idle primary).
                    return max(now - sampled, replay_age or 0.0)
                return now - sampled
        return 0.0

    def _set(self, state: ReplicaState) -> None:
        """Keep `state`; log only when the replica becomes usable or unusable (a replica
        that stays down, or whose lag keeps changing, is not logged again)."""
        previous = self._states.get(state.name)
        self._states[state.name] = state
        if previous is not None and previous.usable == state.usable:
            if previous.reason != state.reason:
                log.debug("read replica %s: %s (%s)", state.name, state.reason, state.detail)
            return
        if state.usable:
            if previous is None:
                log.info("read replica %s in use", state.name)
            else:
                log.warning("read replica %s is back: reads use it again", state.name)
        else:
            log.warning(
                "read replica %s skipped (%s: %s); reads go to the other replicas or the primary",
                state.name,
                state.reason,
                state.detail,
            )

    async def dispose(self) -> None:
        """Wait for a running check, then close the replicas' engines and `control`."""
        if self._task is not None and not self._task.done():
            with contextlib.suppress(Exception):  # its failure was logged or is moot now
                await self._task
        for replica in self.replicas:
            await replica.engine.dispose()
        await self.control.dispose()


def _one_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__
