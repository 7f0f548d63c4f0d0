"""Stripe as the source of truth: read the Events API, store what Stripe says happened.

The reconciler lists ``GET /v1/events`` (:mod:`.stripe_api`: the official ``stripe`` library,
never hand-written HTTP), for the tracked types and from a stored cursor, and for each event:
stores it in ``fw_stripe_events`` (id, type, created, livemode, account, the object's id,
customer, amount, currency and the raw JSON), and — the first time it sees it — declares the
expectations it implies (:mod:`~..detection.declared`): a receipt within the type's grace
(``not_received``), and every effect of the type's plan (``effect_missing``).

Facts it relies on (Stripe's API reference): the list is newest first, ``starting_after`` walks
to older events, ``created[gte]`` bounds the walk, the list may lag slightly behind writes
(hence ``overlap_s``), events are kept 30 days, ``delivery_success=false`` lists events whose
delivery to a webhook endpoint failed or is still being retried, and a Connect account's events
are listed with its ``Stripe-Account`` header.

**Cursor, restart.** Per account a state row in ``fw_engine_state`` holds the cursor (the
newest ``created`` of a completed walk) and the walk in progress (its lower bound, the newest
``created`` seen, the last id stored). Pages are stored ``FLUSH_EVENTS`` at a time and the walk
is written after them, so a restart resumes after the last stored page: nothing is missed, and
what is read twice is stored idempotently (``ReplacingMergeTree``, reads aggregate).

**When.** The engine's leader calls :meth:`Reconciler.run_due` between two ticks (never
during one); a poll stops after ``POLL_BUDGET_S`` at a stored batch, and a longer walk goes on
after the next tick.

**Errors.** Requests are retried in :mod:`.stripe_api`; what still fails stops the poll: a
refused key (401/403) or Stripe unavailable shows in ``/healthz`` (the status row) and, once,
in the log, later polls back off, and detection of everything else goes on.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from fulfillwatch.collector_processor.identity import stored_effect
from fulfillwatch.collector_processor.signals import arrow_stream
from fulfillwatch.collector_processor.store import Store, StoreUnavailable
from fulfillwatch.incident_engine.detection.declared import Declared, declare
from fulfillwatch.incident_engine.detection.engine_state import (
    STRIPE_STATUS_KEY,
    Clock,
    read_state,
    store_now,
    write_state,
)
from fulfillwatch.incident_engine.model.status import Kind
from fulfillwatch.incident_engine.schema_declared import STRIPE_EVENTS_TABLE, STRIPE_PAGES_TABLE
from fulfillwatch.incident_engine.sources.stripe_api import (
    PAGE_SIZE,
    EventsApi,
    Page,
    StripeRefused,
    StripeUnavailable,
    read_ahead,
)
from fulfillwatch.incident_engine.stripe_config import STRIPE_RETENTION, StripeConfig

_logger = logging.getLogger("fulfillwatch.stripe")
#: Pages are stored this many events at a time (each store costs a few statements).
FLUSH_EVENTS = 1_000
#: Seconds one poll may take between two engine ticks before it stops (and resumes next time).
POLL_BUDGET_S = 2.0


def _pages_table(pages: Sequence[Page], project: str, account: str, seen_at: datetime, failed: bool) -> pa.Table:
    """Pages as rows of ``fw_stripe_pages``: the store splits each into its events' rows."""
    count = len(pages)
    return pa.table(
        {
            "project": pa.array([project] * count, pa.string()),
            "account": pa.array([account] * count, pa.string()),
            "delivery_failed": pa.array([1 if failed else 0] * count, pa.uint8()),
            "seen_at": pa.array([int(seen_at.timestamp() * 1_000_000)] * count, pa.timestamp("us", tz="UTC")),
            "body": pa.array([page.body for page in pages], pa.string()),
        }
    )


def _known(client: Client, ids: Sequence[str]) -> set[str]:
    rows = client.query(
        f"SELECT DISTINCT stripe_event_id FROM {STRIPE_EVENTS_TABLE} WHERE stripe_event_id IN {{ids:Array(String)}}",
        parameters={"ids": list(ids)},
    ).result_rows
    return {str(row[0]) for row in rows}


@dataclass
class ReconcilerStatus:
    """What ``/healthz`` and the log say about the reconciler."""

    ok: bool = True
    error: str = ""
    last_poll_at: datetime | None = None
    events_seen: int = 0
    warnings: list[str] = field(default_factory=list)
    #: The newest ``created`` (Unix seconds) seen per event type (the silence watch compares it).
    latest_created: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly form (stored in ``fw_engine_state``)."""
        return {
            "ok": self.ok,
            "error": self.error,
            "last_poll_at": self.last_poll_at.isoformat() if self.last_poll_at else None,
            "events_seen": self.events_seen,
            "warnings": self.warnings,
            "latest_created": self.latest_created,
        }


def load_status(client: Client) -> dict[str, Any] | None:
    """The last status a reconciler stored (``None``: none ever ran)."""
    return read_state(client, STRIPE_STATUS_KEY)


@dataclass(frozen=True)
class PollReport:
    """What one poll read and stored."""

    pages: int
    events: int
    new_events: int
    failed_deliveries: int
    #: False: the time budget ran out mid-walk (the walk is stored; the next poll goes on).
    finished: bool = True


class Reconciler:
    """Reads Stripe's Events API into the store (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        config: StripeConfig,
        project: str,
        plans: Mapping[str, Sequence[str]],
        *,
        api: EventsApi | None = None,
        clock: Clock = store_now,
        backfill: timedelta | None = None,
        declare_lock: threading.Lock | None = None,
        page_size: int = PAGE_SIZE,
        flush_events: int = FLUSH_EVENTS,
    ) -> None:
        self.store = store
        self.config = config
        self.project = project
        self.plans = {t: [stored_effect(e, t) for e in effects] for t, effects in plans.items()}
        #: Stripe's Events API (its ``sleep`` and ``requests`` are the retries' wait and count).
        self.api = api or EventsApi(config)
        self.clock = clock
        self.backfill = backfill or config.backfill_span()
        self.page_size = page_size
        #: The declared check's lock (see :class:`~..detection.declared.DeclaredCheck`).
        self.declare_lock = declare_lock or threading.Lock()
        self.flush_events = flush_events
        self._grace = {event_type: config.grace(event_type) for event_type in config.event_types}
        self.status = ReconcilerStatus()
        self._failures = 0
        self._next_poll_at = 0.0
        if config.key().startswith("sk_"):
            _logger.warning(
                "stripe: the key is a secret key with full access; use a restricted key (rk_...) with read "
                "access to Events only"
            )

    # --- one poll -----------------------------------------------------------------------------

    def poll(self, budget_s: float | None = None) -> PollReport:
        """Read every account's new events (and the undelivered ones); update the status. With
        ``budget_s``, stop after the first stored batch past it: the engine polls between two
        ticks, and a long backfill goes on over several slots (the walk is in the store)."""
        started = time.monotonic()
        client = self.store.client("stripe")
        if self.status.last_poll_at is None and not self.status.latest_created:  # carry it over a restart
            self.status.latest_created = dict((load_status(client) or {}).get("latest_created") or {})
        totals = PollReport(0, 0, 0, 0)
        self.status.warnings = []
        try:
            for account in self.config.accounts or [""]:
                deadline = None if budget_s is None else started + budget_s
                report = self._poll_account(client, account, deadline)
                totals = PollReport(
                    totals.pages + report.pages,
                    totals.events + report.events,
                    totals.new_events + report.new_events,
                    totals.failed_deliveries + report.failed_deliveries,
                    report.finished,
                )
                if not report.finished:
                    break
        except StripeRefused as exc:
            self._fail(client, str(exc), log=_logger.error)
            raise
        except StripeUnavailable as exc:
            self._fail(client, str(exc), log=_logger.warning)
            raise
        self.status.ok, self.status.error = True, ""
        self.status.last_poll_at = self.clock(client)
        self.status.events_seen += totals.events
        write_state(client, STRIPE_STATUS_KEY, self.status.to_json(), self.status.last_poll_at)
        return totals

    def _fail(self, client: Client, message: str, log: Callable[..., None]) -> None:
        if message != self.status.error:  # say it once, not every poll
            log("stripe: %s", message)
        self.status.ok, self.status.error = False, message
        write_state(client, STRIPE_STATUS_KEY, self.status.to_json(), self.clock(client))

    def _cursor_key(self, account: str) -> str:
        return f"stripe_cursor:{self.project}:{account or 'self'}"

    def _poll_account(self, client: Client, account: str, deadline: float | None = None) -> PollReport:
        now = self.clock(client)
        state = read_state(client, self._cursor_key(account)) or {}
        walk = state.get("walk")
        if walk is None:
            cursor = state.get("cursor")
            since = (
                datetime.fromtimestamp(cursor, tz=timezone.utc) - timedelta(seconds=self.config.overlap_s)
                if cursor is not None
                else now - self.backfill
            )
            if now - since > STRIPE_RETENTION:
                warning = (
                    f"stripe: the cursor of account {account or '(own)'} is {(now - since).days} days old, beyond "
                    "Stripe's 30-day retention: events older than 30 days can no longer be read"
                )
                _logger.warning(warning)
                self.status.warnings.append(warning)
            walk = {"gte": int(since.timestamp()), "top": cursor or int(since.timestamp()), "after": None}
        pages = events = new = 0
        pending: list[Page] = []
        # Stripe is read ahead in a thread while what was read is stored: the two overlap.
        for page in read_ahead(self._walk(account, walk["gte"], walk["after"])):
            more = page.more
            pages += 1
            events += len(page.events)
            pending.append(page)
            if sum(len(p.events) for p in pending) < self.flush_events and more:
                continue
            # Stored, then the walk moved past it: a restart resumes after what is stored.
            new += self._store(client, pending, account, now, failed=False)
            stored = [event for p in pending for event in p.events]
            for event in stored:
                latest = self.status.latest_created
                latest[event["type"]] = max(latest.get(event["type"], 0), int(event["created"]))
            if stored:
                walk["top"] = max(walk["top"], max(int(e["created"]) for e in stored))
                walk["after"] = stored[-1]["id"]
            pending = []
            progress = {"cursor": state.get("cursor"), "walk": walk} if more else {"cursor": walk["top"], "walk": None}
            write_state(client, self._cursor_key(account), progress, now)
            if more and deadline is not None and time.monotonic() > deadline:
                return PollReport(pages, events, new, 0, finished=False)  # the next slot goes on
            if not more:
                break
        failed = self._mark_undelivered(client, account, now)
        return PollReport(pages, events, new, failed)

    def _walk(self, account: str, gte: int, after: str | None, delivery_success: bool | None = None) -> Iterator[Page]:
        """Pages from ``after`` (exclusive) down to ``gte``, newest first."""
        while True:
            page = self.api.list(account, gte, after, limit=self.page_size, delivery_success=delivery_success)
            yield page
            if not page.more:
                return
            after = page.events[-1]["id"]

    def pages_since(self, since: datetime, *, delivery_success: bool | None = None) -> Iterator[tuple[str, Page]]:
        """Every account's events created since ``since``, page by page, as ``(account, page)``
        (``fulfillwatch reconcile``: the cursors are neither read nor moved); with
        ``delivery_success=False`` only those Stripe could not deliver."""
        for account in self.config.accounts or [""]:
            for page in self._walk(account, int(since.timestamp()), None, delivery_success):
                yield account, page

    def record(self, client: Client, account: str, page: Page) -> int:
        """Store a page read by :meth:`pages_since` as a poll would; returns how many events were new."""
        return self._store(client, [page], account, self.clock(client), failed=False)

    def _mark_undelivered(self, client: Client, account: str, now: datetime) -> int:
        """Events Stripe could not deliver, over the span where their deadlines may still come."""
        longest = max(self._grace.values())
        since = int((now - longest - timedelta(seconds=self.config.overlap_s) - timedelta(hours=1)).timestamp())
        failed = 0
        for page in self._walk(account, since, None, delivery_success=False):
            self._store(client, [page], account, now, failed=True)
            failed += len(page.events)
        return failed

    def _store(self, client: Client, pages: Sequence[Page], account: str, now: datetime, *, failed: bool) -> int:
        """Store pages; declare the expectations of events seen for the first time."""
        data = [event for page in pages for event in page.events]
        if not data:
            return 0
        known = _known(client, [str(e["id"]) for e in data])
        fresh = [e for e in data if e["id"] not in known and e.get("type") in self.config.event_types]
        # Declared first, then stored: a crash in between re-reads the page and declares again
        # (idempotent), never stores an event whose expectations were not declared.
        with self.declare_lock:
            declare(client, [d for event in fresh for d in self._declarations(event, account, now)])
        # A page only re-read (the overlap) is not stored again; a sighting among the undelivered
        # is (its delivery_failed = 1 is the version that wins).
        stored = [page for page in pages if failed or any(e["id"] not in known for e in page.events)]
        if not stored:
            return len(fresh)
        table = _pages_table(stored, self.project, account, now, failed)
        client.raw_insert(
            STRIPE_PAGES_TABLE,
            column_names=table.column_names,
            insert_block=arrow_stream([table], table.schema),
            fmt="ArrowStream",
        )
        return len(fresh)

    def _declarations(self, event: Mapping[str, Any], account: str, now: datetime) -> Iterator[Declared]:
        event_type = str(event["type"])
        due = datetime.fromtimestamp(int(event["created"]), tz=timezone.utc) + self._grace[event_type]
        acct = str(event.get("account") or account)
        event_id, project, service = str(event["id"]), self.project, self.config.service
        yield Declared(Kind.NOT_RECEIVED.value, project, event_id, event_type, "", service, acct, now, due)
        for effect in self.plans.get(event_type, []):
            yield Declared(Kind.EFFECT_MISSING.value, project, event_id, event_type, effect, service, acct, now, due)

    # --- talking to Stripe ----------------------------------------------------------------------

    def run_due(self) -> bool:
        """Poll if it is time (the engine calls this between two ticks, on its leader); returns
        whether work is left for right after the next tick (a walk cut by the time budget).
        Failures back off, exponentially with jitter, up to 15 minutes; nothing raises."""
        if time.monotonic() < self._next_poll_at:
            return False
        delay = self.config.poll_interval_s
        try:
            report = self.poll(budget_s=POLL_BUDGET_S)
            self._failures = 0
            if not report.finished:
                self._next_poll_at = 0.0
                return True
        except (StripeUnavailable, StripeRefused):
            self._failures += 1
            jitter = random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not a secret
            delay = min(delay * 2 ** min(self._failures, 4), 900.0) * jitter
        except (StoreUnavailable, ClickHouseError, OSError) as exc:
            self.store.discard("stripe")
            _logger.warning("stripe: storing events failed (%s); retrying", exc)
        except Exception:  # a bug in one poll must not stop the next, nor the engine
            _logger.exception("stripe: poll crashed; retrying")
        self._next_poll_at = time.monotonic() + delay
        return False
