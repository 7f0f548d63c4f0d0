"""The alert sender: follows the incident log and announces what deserves it, durably.

The log is the queue. The sender reads new transitions from the log's feed (its rows in
``seq`` order, the log's projection ``by_seq``) from a position it stores in
``fw_engine_state``, and every attempt it makes is an ``alert_attempt`` row in the incident's
log, whose cause is ``<alert id>#<attempt>``. The alert id is stable per (destination,
transition) and is what the receiver sees as the notification's id (``webhook-id``; PagerDuty
folds by incident id), so:

* a restart resumes: the stored position is never past a notification still in progress, and a
  notification whose last attempt was ``retrying`` continues with its next attempt;
* nothing is sent twice for the same transition and destination: a notification whose log
  shows a final attempt (delivered, rejected, given up) is skipped, and one already queued in
  this process is not queued again. What remains is the window between a receiver's answer
  and the attempt row being stored: a crash exactly there sends that one notification again,
  with the same id, so the receiver can drop the copy.

Rows are read again from ``overlap_s`` before the position: ``seq`` comes from the clock of the
process that wrote the row, and another process's row may land a little after a later one.
Transitions written in this process wake the sender at once; others are seen within
``poll_s``. Only one process sends: ``fulfillwatch serve`` or the engine role, and on a
ClickHouse server only while it holds the engine lease (``active``). Every destination has its
own queue and worker, so one that is down never delays the others.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

import httpx
from clickhouse_connect.driver.exceptions import ClickHouseError

from fulfillwatch.collector_processor.store import Store, StoreUnavailable
from fulfillwatch.incident_engine.config import AlertDestination
from fulfillwatch.incident_engine.delivery.alerts import ALERT_EVENTS, alert_id, payload
from fulfillwatch.incident_engine.delivery.attempts import FINAL_OUTCOMES, Attempt, Sleep, deliver, remaining_wait
from fulfillwatch.incident_engine.delivery.signing import signed_request
from fulfillwatch.incident_engine.detection.engine_state import ALERT_POSITION_KEY, read_state, write_state
from fulfillwatch.incident_engine.incidents import log_reads
from fulfillwatch.incident_engine.incidents.incident_log import Journal
from fulfillwatch.incident_engine.incidents.records import LoggedTransition
from fulfillwatch.incident_engine.model.transitions import SYSTEM_ACTOR, Transition, TransitionType
from fulfillwatch.incident_engine.schema import LOG_FEED_DAYS

_logger = logging.getLogger("fulfillwatch.alerts")
_NS = 1_000_000_000


@dataclass(frozen=True)
class Notification:
    """One transition to announce to one destination."""

    destination: str
    transition: Transition
    event: str
    seq: int
    first_attempt: int = 1
    #: When resuming: what is left of the wait the last attempt asked for.
    first_delay_s: float | None = None

    @property
    def alert_id(self) -> str:
        """The notification's stable id (the receiver's idempotency key)."""
        return alert_id(self.destination, self.transition)


class AlertSender:
    """Announces transitions from the log to the configured destinations."""

    def __init__(
        self,
        store: Store,
        destinations: Mapping[str, AlertDestination],
        journal: Journal,
        *,
        poll_s: float = 1.0,
        overlap_s: float = 60.0,
        page_size: int = 2000,
        sleep: Sleep = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._store = store
        self._journal = journal
        self._destinations = dict(destinations)
        self._poll_s = poll_s
        self._overlap = int(overlap_s * _NS)
        self._page_size = page_size
        self._sleep = sleep
        self._transport = transport
        self._types = list(ALERT_EVENTS)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._queues: dict[str, asyncio.Queue[Notification]] = {}
        self._cursor = 0  # highest seq read
        self._saved = -1  # position last stored
        self._seen: dict[str, int] = {}  # transition id → seq, for rows that may be read again
        self._queued: set[str] = set()  # alert ids queued or in progress here
        self._pending: Counter[int] = Counter()  # seq of every queued notification
        if self._destinations:
            journal.subscribe(self.notify)

    def notify(self, transitions: Sequence[Transition]) -> None:
        """Journal listener: something was written here, look at the log now (thread-safe)."""
        if (
            self._loop is not None
            and self._wakeup is not None
            and any(t.transition in ALERT_EVENTS for t in transitions)
        ):
            self._loop.call_soon_threadsafe(self._wakeup.set)

    def position(self) -> int:
        """The ``seq`` up to which every notification is finished (what a restart resumes from)."""
        return min(self._pending) - 1 if self._pending else self._cursor

    async def run(self, stop: asyncio.Event, active: Callable[[], bool] = lambda: True) -> None:
        """Follow the log and send until ``stop`` is set; send only while ``active()``."""
        if not self._destinations:
            await stop.wait()
            return
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        workers: list[asyncio.Task[None]] = []
        async with httpx.AsyncClient(transport=self._transport) as client:
            while not stop.is_set():
                if active():
                    if not workers:
                        await asyncio.to_thread(self._start_following)
                        workers = [asyncio.create_task(self._work(client, name)) for name in self._destinations]
                    await self._follow()
                elif workers:  # the lease went to another engine: it resumes from the stored position
                    await self._stop_workers(workers)
                    workers = []
                self._wakeup.clear()
                stopped = asyncio.create_task(stop.wait())
                woken = asyncio.create_task(self._wakeup.wait())
                await asyncio.wait({stopped, woken}, timeout=self._poll_s, return_when=asyncio.FIRST_COMPLETED)
                stopped.cancel()
                woken.cancel()
            await self._stop_workers(workers)

    async def _stop_workers(self, workers: list[asyncio.Task[None]]) -> None:
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)

    def _start_following(self) -> None:
        stored = read_state(self._store.client("alerts"), ALERT_POSITION_KEY)
        # Rows written more than LOG_FEED_DAYS ago are not announced, as when the feed was a
        # table of its own that kept them that long: a sender configured for the first time, or
        # further behind, starts there.
        reach = log_reads.seq_at(datetime.now(timezone.utc) - timedelta(days=LOG_FEED_DAYS))
        self._cursor = max(int(stored["seq"]) if stored else 0, reach)
        self._saved = self._cursor
        self._seen.clear()
        self._queued.clear()
        self._pending.clear()
        self._queues = {name: asyncio.Queue() for name in self._destinations}

    async def _follow(self) -> None:
        try:
            found = await asyncio.to_thread(self._read_new)
        except (StoreUnavailable, ClickHouseError, OSError) as exc:  # try again at the next poll
            _logger.warning("alerts: cannot read the incident log: %s", exc)
            return
        for notification in found:
            if notification.alert_id in self._queued:
                continue
            self._queued.add(notification.alert_id)
            self._pending[notification.seq] += 1
            self._queues[notification.destination].put_nowait(notification)
        if self.position() != self._saved:
            await asyncio.to_thread(self._save_position)

    def _read_new(self) -> list[Notification]:
        """New transitions since the position, as notifications still to send (runs in a
        worker thread: it touches only the read position, never the queues)."""
        client = self._store.client("alerts")
        after = max(0, self._cursor - self._overlap)
        fresh: list[LoggedTransition] = []
        while True:
            rows = log_reads.feed_after(client, after, self._types, self._page_size)
            for row in rows:
                if row.transition.transition_id not in self._seen:
                    self._seen[row.transition.transition_id] = row.seq
                    fresh.append(row)
                self._cursor = max(self._cursor, row.seq)
            if len(rows) < self._page_size:
                break
            after = rows[-1].seq
        # Rows at or below the next read's start are never read again.
        oldest_reread = self._cursor - self._overlap
        self._seen = {tid: seq for tid, seq in self._seen.items() if seq > oldest_reread}
        return self._unfinished(fresh)

    def _unfinished(self, rows: list[LoggedTransition]) -> list[Notification]:
        candidates = [
            Notification(name, row.transition, ALERT_EVENTS[row.transition.transition], row.seq)
            for row in rows
            for name, destination in self._destinations.items()
            if ALERT_EVENTS[row.transition.transition] in destination.on
        ]
        progress = log_reads.alert_progress(
            self._store.client("alerts"), [n.transition.incident_id for n in candidates]
        )
        chosen: list[Notification] = []
        now = datetime.now(timezone.utc)
        for notification in candidates:
            done = progress.get(notification.alert_id)
            if done is not None and done.outcome in FINAL_OUTCOMES:
                continue
            if done is not None:  # interrupted by a restart: continue with the next attempt
                wait = remaining_wait(done.at, done.next_delay_s, now)
                notification = replace(notification, first_attempt=done.attempt + 1, first_delay_s=wait)
            chosen.append(notification)
        return chosen

    def _save_position(self) -> None:
        position = self.position()
        write_state(self._store.client("alerts"), ALERT_POSITION_KEY, {"seq": position}, datetime.now(timezone.utc))
        self._saved = position

    async def _work(self, client: httpx.AsyncClient, name: str) -> None:
        queue = self._queues[name]
        while True:
            notification = await queue.get()
            try:
                await self._send(client, notification)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug in one delivery must not stop this destination
                _logger.exception("alert %s for %s failed", name, notification.transition.incident_id)
            self._queued.discard(notification.alert_id)
            self._pending[notification.seq] -= 1
            if self._pending[notification.seq] <= 0:
                del self._pending[notification.seq]

    async def _send(self, client: httpx.AsyncClient, notification: Notification) -> None:
        destination = self._destinations[notification.destination]
        transition, event = notification.transition, notification.event
        document = payload(destination, transition, event)
        message_id = notification.alert_id

        def body(attempt: int) -> tuple[bytes, dict[str, str]]:
            if destination.type == "webhook":
                assert destination.secret is not None
                return signed_request(message_id, document, [destination.secret.get_secret_value()])
            return json.dumps(document).encode(), {"content-type": "application/json"}

        async def record(attempt: Attempt) -> None:
            row = Transition(
                transition.incident_id,
                transition.identity,
                TransitionType.ALERT_ATTEMPT,
                None,
                "",
                SYSTEM_ACTOR,
                f"alert {notification.destination} ({destination.type}, {event}): {attempt.describe()}",
                f"{message_id}#{attempt.number}",
                attempt.at,
                details={
                    **attempt.details(),
                    "destination": notification.destination,
                    "destination_type": destination.type,
                    "event": event,
                },
            )
            await asyncio.to_thread(self._journal.append, [row], purpose="alerts")

        await deliver(
            client,
            str(destination.target_url()),
            body,
            schedule=destination.retry_schedule_s,
            timeout_s=destination.timeout_s,
            on_attempt=record,
            first_attempt=notification.first_attempt,
            first_delay_s=notification.first_delay_s,
            sleep=self._sleep,
        )
