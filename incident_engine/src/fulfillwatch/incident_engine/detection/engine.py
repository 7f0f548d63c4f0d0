"""The incident engine: periodic, incremental evaluation of expectations.

Each tick looks only at what can have changed since the previous one (deadlines are data):

* expectations with a signal stored since the ingest watermark (minus a small overlap, because
  a concurrent insert may become visible after a later-stamped one), and
* expectations whose deadline passed since the due watermark.

Of those, only the ones that may need a transition are looked at closely: what arrived that is
not routine (a failure, a skipped result, anything about an incident still active) and the
deadlines of expectations still open (no success yet) — decided from the window's rows and
what is live: two key-value tables (``fw_active_incidents``, ``fw_open_expectations``) whose
keys the engine keeps in memory. For them it reads the summary of *all* their signals and
their incident heads (side by side, on two clients), asks :func:`~.status.assess` and
:func:`~.transitions.plan` what to append, appends it beside opening what waits for a
result, then advances the watermarks (kept in memory too: the leader is their only writer) and
writes a heartbeat beside forgetting the expectations the window settled. Its cost follows the
window and what needs deciding, not the size of the history. A failure result wakes the engine
at once (``wake()``), so ``result_failed`` incidents open within a second of the span arriving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from fulfillwatch.collector_processor.store import Store, StoreUnavailable
from fulfillwatch.incident_engine.detection.engine_state import (
    Clock,
    Heartbeat,
    Watermarks,
    load_active_incidents_position,
    load_watermarks,
    save_tick,
    save_watermarks,
    store_now,
)
from fulfillwatch.incident_engine.detection.expectations import evaluate, next_data
from fulfillwatch.incident_engine.detection.lease import EngineLease
from fulfillwatch.incident_engine.detection.open_set import OpenSet
from fulfillwatch.incident_engine.detection.window import Beside, Live, Window, decide, side_by_side
from fulfillwatch.incident_engine.incidents import active_incidents
from fulfillwatch.incident_engine.incidents.incident_log import Journal, follow_settled
from fulfillwatch.incident_engine.live_keys import KeyCopy
from fulfillwatch.incident_engine.model.transitions import Transition, plan
from fulfillwatch.incident_engine.schema import EPOCH

_logger = logging.getLogger("fulfillwatch.engine")
#: The engine's second client: reads that can run beside those of its first (see :func:`.evaluate`).
_BESIDE = "engine-beside"


class Chore(Protocol):
    """Work the engine's leader does between two ticks (never during one): the declared check,
    the Stripe reconciler. Runs only when it is due, never raises."""

    def run_due(self) -> bool:
        """Do what is due; ``True`` when work is left for right after the next tick."""


class SignalImporter(Protocol):
    """A source of signals other than the receiver (see :mod:`.otel_traces`)."""

    table: str

    def run(self) -> object:
        """Import what is new."""


@dataclass(frozen=True)
class EngineSettings:
    """Tuning of the engine."""

    interval_s: float = 5.0
    #: Deadline for expectations that have results but no receipt.
    default_timeout_s: float = 1800.0
    #: Re-read this much before the watermark: inserts may become visible out of order.
    ingest_overlap_s: float = 2.0
    #: Minimum gap between two ticks, also when woken by failures.
    min_gap_s: float = 0.5
    #: Most ingest (and deadline) time one tick covers; a backlog is worked off in such steps.
    max_window_s: float = 900.0


@dataclass(frozen=True)
class TickReport:
    """What one tick did."""

    now: datetime
    expectations: int
    transitions: int
    duration_s: float
    caught_up: bool = True


class Engine:
    """Evaluates expectations against the store and appends incident transitions."""

    def __init__(
        self,
        store: Store,
        settings: EngineSettings | None = None,
        *,
        journal: Journal | None = None,
        importers: Sequence[SignalImporter] = (),
        chores: Sequence[Chore] = (),
        lease: EngineLease | None = None,
        clock: Clock = store_now,
    ) -> None:
        self.store = store
        self.importers = tuple(importers)
        self.chores = list(chores)
        self._import_errors: dict[str, str] = {}
        self.lease = lease
        self.settings = settings or EngineSettings()
        self.engine_id = f"engine-{uuid.uuid4().hex[:8]}"
        self.journal = journal or Journal(store)
        self.clock = clock
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.last_report: TickReport | None = None
        #: ``time.monotonic()`` when the last tick completed (readiness: is the engine fresh?).
        self.last_completed: float | None = None
        self._active_follower: active_incidents.FeedFollower | None = None
        #: The watermarks this engine stored last: no other engine writes them while this one
        #: holds the lease, so a tick needs not read them back (forgotten whenever it is not the
        #: leader, or a tick fails; a copy older than the store's only repeats a window).
        self._marks: Watermarks | None = None
        self._open_set = OpenSet()
        self._active_ids: KeyCopy | None = None  # the first tick finds it
        self._beside_reads: ThreadPoolExecutor | None = None

    def is_leader(self) -> bool:
        """Whether this engine does the single-process work now: always without a lease (one
        process owns a chDB directory), else while it holds the lease."""
        return self.lease is None or self.lease.held

    def tick(self) -> TickReport:
        """Evaluate once (blocking; the async loop runs it in a worker thread)."""
        started = time.perf_counter()
        self._import()
        client = self.store.client("engine")
        now = self.clock(client)
        stored = self._marks if self._marks is not None else load_watermarks(client)
        marks = self._skip_empty_stretches(client, stored, now)
        overlap = timedelta(seconds=self.settings.ingest_overlap_s)
        step = timedelta(seconds=self.settings.max_window_s)
        default_timeout = timedelta(seconds=self.settings.default_timeout_s)
        window = Window(
            since=max(EPOCH, marks.ingested - overlap),
            until=min(now, marks.ingested + step),
            due_since=max(EPOCH, marks.due - overlap),
            due_until=min(now, marks.due + step),
            now=now,
            default_timeout=default_timeout,
        )
        # Settled first: candidates are chosen by what fw_active_incidents says is active.
        followed = self._catch_up_active_incidents(client)
        beside = self._beside()
        if self._active_ids is None:
            self._active_ids = active_incidents.active_ids(client)
            self._active_ids.forget()  # a copy from before this engine may be out of date
        live = Live(self._open_set.ids(client), self._active_ids.ids(client))
        decisions = decide(client, window, live, beside)
        decided, pending = evaluate(client, window, decisions.to_evaluate, beside=beside)
        decisions = decisions.still_open(pending)
        transitions: list[Transition] = []
        new_incidents: set[str] = set()  # no head was read: these transitions are their first rows
        for expectation, head, verdict in decided:  # verdicts at the window's now
            planned = plan(expectation, head, verdict, now)
            transitions.extend(planned)
            if head is None and planned:
                new_incidents.add(expectation.incident_id)
        # Side by side where the order does not matter (see OpenSet.enter and .leave).
        side_by_side(
            client,
            beside,
            lambda _: self.journal.append(transitions, purpose="engine", new_incidents=new_incidents),
            lambda on: self._open_set.enter(on, decisions),
        )
        duration = time.perf_counter() - started
        evaluated = Watermarks(ingested=window.until, due=window.due_until)
        beat = Heartbeat(
            engine_id=self.engine_id,
            at=now + timedelta(seconds=duration),
            tick_ms=round(duration * 1000, 2),
            expectations=len(decided),
            transitions=len(transitions),
            lag_s=round(duration, 3),
        )

        def store_tick(on: Client) -> None:
            save_tick(on, evaluated, active_incidents_position=followed, beat=beat)

        if decisions.waiting is None:  # a burst enters its waiting expectations after the others left
            self._open_set.leave(client, window, decisions)
            store_tick(client)
        else:
            side_by_side(client, beside, store_tick, lambda on: self._open_set.leave(on, window, decisions))
        self._marks = evaluated
        caught_up = window.until >= now and window.due_until >= now
        report = TickReport(now, len(decided), len(transitions), duration, caught_up)
        self.last_report = report
        self.last_completed = time.monotonic()
        if transitions:
            _logger.info(
                "tick: %d expectations, %d transitions in %.0f ms", len(decided), len(transitions), duration * 1000
            )
        return report

    def move_watermarks(self, marks: Watermarks) -> None:
        """Store new watermarks (back to evaluate a stretch again, or ahead to skip one); the
        next tick starts there. Watermarks written to the store by anyone else are read only
        when this engine starts or becomes the leader again."""
        save_watermarks(self.store.client("engine"), marks)
        self._marks = marks

    def _forget_copies(self) -> None:
        """Read the watermarks and what is live from the store again at the next tick: another
        engine led, or a tick failed somewhere between its writes."""
        self._marks = None
        self._open_set.forget()
        if self._active_ids is not None:
            self._active_ids.forget()

    def _beside(self) -> Beside:
        """The engine's second client and the thread that reads on it."""
        if self._beside_reads is None:
            self._beside_reads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fw-engine-beside")
        return Beside(self.store.client(_BESIDE), self._beside_reads)

    def _catch_up_active_incidents(self, client: Client) -> int | None:
        """Settle ``fw_active_incidents`` for what other writers changed (see
        :mod:`~..incidents.active_incidents`); returns the feed position to store with the tick
        when it moved (kept across restarts; a crash before it is stored only repeats a refresh)."""
        if self._active_follower is None:
            self._active_follower = active_incidents.FeedFollower(load_active_incidents_position(client))
        follower = self._active_follower
        before = follower.position
        refreshed = self.journal.take_refreshed()
        if self.store.location.embedded:  # the only writer: the feed is read only when needed
            position = follow_settled(client, lambda settled: follower.catch_up(client, refreshed, settled))
        else:
            position = follower.catch_up(client, refreshed)
        return position if position != before else None

    def _import(self) -> None:
        """Bring in signals from other tables first, so this tick evaluates them."""
        for importer in self.importers:
            try:
                importer.run()
                self._import_errors.pop(importer.table, None)
            except Exception as exc:  # noqa: BLE001 - a broken source must not stop detection of the others
                message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                if self._import_errors.get(importer.table) != message:  # say it once, not every tick
                    _logger.error("importing signals from %s failed (retrying every tick): %s", importer.table, message)
                self._import_errors[importer.table] = message

    def _skip_empty_stretches(self, client: Client, marks: Watermarks, now: datetime) -> Watermarks:
        """When far behind (first run, long outage), jump to just before the next data."""
        step = timedelta(seconds=self.settings.max_window_s)
        if now - marks.ingested <= step and now - marks.due <= step:
            return marks
        next_signal, next_deadline = next_data(
            client, marks.ingested, marks.due, timedelta(seconds=self.settings.default_timeout_s)
        )
        just_before = timedelta(microseconds=1)
        ingested = min(now, next_signal - just_before) if next_signal is not None else now
        due = min(now, next_deadline - just_before) if next_deadline is not None else now
        return Watermarks(ingested=max(marks.ingested, ingested), due=max(marks.due, due))

    def wake(self) -> None:
        """Ask for a tick as soon as possible (safe from any thread)."""
        if self._loop is not None and self._wakeup is not None:
            self._loop.call_soon_threadsafe(self._wakeup.set)

    async def run(self, stop: asyncio.Event) -> None:
        """Tick every ``interval_s`` (or sooner when woken) until ``stop`` is set."""
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        failures = 0
        while not stop.is_set():
            self._wakeup.clear()
            caught_up = True
            try:
                if self.lease is None or await asyncio.to_thread(self.lease.hold):
                    caught_up = (await asyncio.to_thread(self.tick)).caught_up
                    # Between ticks, never beside one: a tick's cost is its own (docs/ARCHITECTURE.md).
                    for chore in self.chores:
                        if await asyncio.to_thread(chore.run_due):
                            caught_up = False
                else:
                    self._forget_copies()  # the leader writes them now
                    self.last_completed = time.monotonic()  # a live standby is as fresh as the holder
                failures = 0
            except (StoreUnavailable, ClickHouseError, OSError) as exc:
                failures += 1
                self._forget_copies()
                self.store.discard("engine")
                self.store.discard(_BESIDE)
                _logger.warning("engine tick failed (%s); retrying", exc)
            except Exception:  # a bug in one tick must not stop detection
                failures += 1
                self._forget_copies()
                _logger.exception("engine tick crashed; retrying")
            delay = self.settings.interval_s * min(2**failures, 12) if failures else self.settings.interval_s
            if not caught_up:
                delay = 0.0  # a backlog: keep going
            await _sleep_until(stop, self._wakeup, delay, self.settings.min_gap_s)
        if self.lease is not None:
            with contextlib.suppress(StoreUnavailable, ClickHouseError, OSError):
                await asyncio.to_thread(self.lease.release)
        if self._beside_reads is not None:
            self._beside_reads.shutdown(wait=False)
            self._beside_reads = None


async def _sleep_until(stop: asyncio.Event, wakeup: asyncio.Event, delay: float, min_gap: float) -> None:
    await asyncio.sleep(min_gap)
    if delay <= min_gap:
        return
    waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wakeup.wait())}
    try:
        await asyncio.wait(waiters, timeout=max(0.0, delay - min_gap), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
