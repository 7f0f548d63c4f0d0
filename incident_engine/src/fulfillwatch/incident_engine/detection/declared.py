"""Declared expectations: effects that must happen although no signal has said so yet.

Everything else the engine decides starts from a signal the app sent. Two things declare an
expectation without one:

* **Stripe's record** — the reconciler (:mod:`~..sources.stripe_events`) read an event of a
  tracked type: the app must record a receipt for it (any effect) within the type's grace, or
  a ``not_received`` incident opens;
* **a fulfillment plan** — ``[plans."<type>"] effects = [...]``: once any receipt of an event of
  that type arrives (or the reconciler sees the event), every planned effect must get a signal
  of its own by that receipt's deadline, or an ``effect_missing`` incident opens for it.

They wait in ``fw_declared_expectations`` (a key-value table of what is waiting, keyed by the
incident id the expectation would have). :class:`DeclaredCheck` runs every few seconds: it turns
new receipts of planned types into declared effects, decides the rows whose deadline passed —
a signal for them exists, or an incident opens — and deletes them; and it resolves active
``not_received`` / ``effect_missing`` incidents once a signal arrives (``late receipt``). From
then on the expectation is an ordinary one: its result resolves or fails it like any other, and
a later deadline reopens an incident resolved by a late receipt (``model/transitions``).

Restart-safe like the engine: rows leave the table only after the transitions are appended,
transition ids are deterministic, and incidents that already exist are not opened again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from fulfillwatch.collector_processor.identity import ExpectationIdentity, stored_effect
from fulfillwatch.collector_processor.signals import SIGNALS_TABLE
from fulfillwatch.collector_processor.store import Store, StoreUnavailable, insert_rows
from fulfillwatch.incident_engine.detection import arrived
from fulfillwatch.incident_engine.detection.engine_state import (
    STRIPE_STATUS_KEY,
    Clock,
    read_state,
    store_now,
    write_state,
)
from fulfillwatch.incident_engine.detection.silence import SilenceCheck
from fulfillwatch.incident_engine.incidents.incident_log import Journal
from fulfillwatch.incident_engine.model.status import DECLARED_KINDS, Kind
from fulfillwatch.incident_engine.model.transitions import SYSTEM_ACTOR, State, Transition, TransitionType
from fulfillwatch.incident_engine.schema import (
    ACTIVE_INCIDENTS_TABLE,
    EXPECTATIONS_TABLE,
    INCIDENT_LOG_TABLE,
)
from fulfillwatch.incident_engine.schema_declared import DECLARED_TABLE, STRIPE_EVENTS_TABLE

_logger = logging.getLogger("fulfillwatch.declared")
_COLUMNS = [
    "incident_id",
    "kind",
    "project",
    "stripe_event_id",
    "event_type",
    "effect",
    "service",
    "account",
    "declared_at",
    "due_at",
]
_PLANS_POSITION = "plans_position"
#: Keys per statement when reading signals of, or deleting, declared rows.
_BATCH = 10_000


class Declared(NamedTuple):
    """One declared expectation — which one, what opens if it is missed, by when — in the
    table's column order (a tuple: a backfill declares hundreds of thousands)."""

    kind: str  # not_received | effect_missing
    project: str
    stripe_event_id: str
    event_type: str
    effect: str  # stored form
    service: str
    account: str
    declared_at: datetime
    due_at: datetime


def declare(client: Client, rows: Sequence[Declared]) -> None:
    """Add declared expectations. Idempotent: the key is the incident id the expectation would
    have, which the table derives from the row (``INCIDENT_ID_SQL``, the only derivation)."""
    if rows:
        insert_rows(client, DECLARED_TABLE, list(rows), _COLUMNS[1:])


@dataclass(frozen=True)
class CheckReport:
    """What one check did."""

    decided: int
    opened: int
    resolved: int


_PLANNED_EFFECTS = f"""
    INSERT INTO {DECLARED_TABLE} ({", ".join(_COLUMNS[1:])})
    SELECT '{Kind.EFFECT_MISSING.value}', project, stripe_event_id, event_type, effect, service, '', declared_at, due_at
    FROM (
        SELECT project, stripe_event_id, event_type, any(service) AS service, min(ingested_at) AS declared_at,
               min(due_at) AS due_at
        FROM {SIGNALS_TABLE}
        WHERE signal = 'receipt' AND has({{types:Array(String)}}, event_type) AND {arrived.RECEIPTS_ARRIVED_SQL}
        GROUP BY project, stripe_event_id, event_type
    )
    ARRAY JOIN {{effects:Array(Array(String))}}[indexOf({{types:Array(String)}}, event_type)] AS effect
"""

#: The declared expectations whose deadline passed and that warrant an incident: ``not_received``
#: when the event has no signal at all, ``effect_missing`` when it has some but none for the
#: planned effect — and no incident was logged for it before (a re-declaration after a crash).
#: With Stripe's delivery facts. One statement: the due rows never travel to Python and back.
_MISSED = f"""
    WITH due AS (SELECT * FROM {DECLARED_TABLE} WHERE due_at <= {{now:DateTime64(6, 'UTC')}}),
         seen AS (SELECT DISTINCT project, stripe_event_id, effect FROM {EXPECTATIONS_TABLE}
                  WHERE stripe_event_id IN (SELECT stripe_event_id FROM due))
    SELECT d.incident_id, d.kind, d.project, d.stripe_event_id, d.event_type, d.effect, d.service, d.account,
           d.declared_at, d.due_at, s.delivery_failed, s.created, s.seen_at
    FROM due AS d
    LEFT JOIN (
        SELECT stripe_event_id, max(delivery_failed) AS delivery_failed, min(created) AS created,
               min(seen_at) AS seen_at
        FROM {STRIPE_EVENTS_TABLE} WHERE stripe_event_id IN (SELECT stripe_event_id FROM due)
        GROUP BY stripe_event_id
    ) AS s ON s.stripe_event_id = d.stripe_event_id
    WHERE if(d.kind = '{Kind.NOT_RECEIVED.value}',
             (d.project, d.stripe_event_id) NOT IN (SELECT project, stripe_event_id FROM seen),
             (d.project, d.stripe_event_id) IN (SELECT project, stripe_event_id FROM seen)
             AND (d.project, d.stripe_event_id, d.effect) NOT IN (SELECT project, stripe_event_id, effect FROM seen))
      AND d.incident_id NOT IN (
          SELECT incident_id FROM {INCIDENT_LOG_TABLE} WHERE incident_id IN (SELECT incident_id FROM due))
    SETTINGS join_use_nulls = 1
"""

_SIGNALLED = f"""
    SELECT DISTINCT project, stripe_event_id, effect FROM {EXPECTATIONS_TABLE}
    WHERE stripe_event_id IN {{ids:Array(String)}}
"""

_ACTIVE_DECLARED = f"""
    SELECT incident_id, kind, state, project, stripe_event_id, event_type, effect, service
    FROM {ACTIVE_INCIDENTS_TABLE} WHERE kind IN {{kinds:Array(String)}}
"""


def _batches(items: Sequence[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), _BATCH):
        yield list(items[start : start + _BATCH])


def signalled(client: Client, event_ids: Iterable[str]) -> set[tuple[str, str, str]]:
    """``(project, event id, stored effect)`` of every expectation with a signal among these events."""
    found: set[tuple[str, str, str]] = set()
    for batch in _batches(sorted(set(event_ids))):
        rows = client.query(_SIGNALLED, parameters={"ids": batch}).result_rows
        found.update((str(p), str(e), str(f)) for p, e, f in rows)
    return found


class DeclaredCheck:
    """Decides declared expectations (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        journal: Journal,
        plans: Mapping[str, Sequence[str]],
        *,
        silence: SilenceCheck | None = None,
        clock: Clock = store_now,
        interval_s: float = 15.0,
    ) -> None:
        self.store = store
        self.silence = silence
        #: Held while due rows are decided, and by the reconciler while it declares: the rows a
        #: check reads and then deletes are exactly the ones it decided.
        self.lock = threading.Lock()
        self.interval_s = interval_s
        self._next_check_at = 0.0
        self.journal = journal
        #: event type → the stored form of each planned effect
        self.plans = {
            event_type: [stored_effect(e, event_type) for e in effects] for event_type, effects in plans.items()
        }
        self.clock = clock

    def check(self) -> CheckReport:
        """Expand plans from new receipts, decide what fell due, resolve late receipts (and run
        the silence watch)."""
        client = self.store.client("declared")
        now = self.clock(client)
        # Arrivals are stamped by the store's clock: windows over them end at its "now" (the
        # engine's clock is the store's in production; tests run theirs ahead).
        arrived_until = store_now(client) if self.plans or self.silence is not None else now
        if self.plans:
            self._expand_plans(client, arrived_until)
        decided, opened = self._decide_due(client, now)
        resolved = self._resolve_late(client, now)
        if self.silence is not None:
            status = read_state(client, STRIPE_STATUS_KEY) if self.silence.stripe_reconciling else None
            latest = (status or {}).get("latest_created") or {}
            stopped, resumed = self.silence.check(client, now, arrived_until, latest)
            opened, resolved = opened + stopped, resolved + resumed
        if opened or resolved:
            _logger.info("declared expectations: %d opened, %d resolved", opened, resolved)
        return CheckReport(decided, opened, resolved)

    def run_due(self) -> bool:
        """Check if ``interval_s`` passed since the last check (the engine calls this between
        two ticks, on its leader). Never raises; returns ``False`` (no work left over)."""
        if time.monotonic() < self._next_check_at:
            return False
        self._next_check_at = time.monotonic() + self.interval_s
        try:
            self.check()
        except (StoreUnavailable, ClickHouseError, OSError) as exc:
            self.store.discard("declared")
            _logger.warning("checking declared expectations failed (%s); retrying", exc)
        except Exception:  # a bug in one check must not stop the next, nor the engine
            _logger.exception("checking declared expectations crashed; retrying")
        return False

    def _expand_plans(self, client: Client, now: datetime) -> None:
        start = arrived.since(read_state(client, _PLANS_POSITION), now)
        client.command(
            _PLANNED_EFFECTS,
            parameters={"types": list(self.plans), "effects": list(self.plans.values()), "since": start, "until": now},
        )
        write_state(client, _PLANS_POSITION, arrived.position(now), now)

    def _decide_due(self, client: Client, now: datetime) -> tuple[int, int]:
        with self.lock:  # no declaration lands between the reads of the due rows and their delete
            due = f"FROM {DECLARED_TABLE} WHERE due_at <= {{now:DateTime64(6, 'UTC')}}"
            decided = int(client.query(f"SELECT count() {due}", parameters={"now": now}).result_rows[0][0])
            if not decided:
                return 0, 0
            missed = client.query(_MISSED, parameters={"now": now}).named_results()
            transitions = [self._opening(row, now) for row in missed]
            self.journal.append(transitions, purpose="declared")
            client.command(f"DELETE {due}", parameters={"now": now})
        return decided, len(transitions)

    @staticmethod
    def _opening(row: Mapping[str, Any], now: datetime) -> Transition:
        identity = ExpectationIdentity(
            row["project"], row["stripe_event_id"], row["effect"], row["event_type"], row["service"]
        )
        due_at: datetime = row["due_at"]
        details: dict[str, object] = {"due_at": due_at.isoformat(), "declared_at": row["declared_at"].isoformat()}
        if row["account"]:
            details["account"] = row["account"]
        failed = row["delivery_failed"]
        if row["created"] is not None:
            details["stripe_created"] = row["created"].isoformat()
            details["seen_at"] = row["seen_at"].isoformat()
            details["delivery_failed"] = bool(failed)
        return Transition(
            row["incident_id"],
            identity,
            TransitionType.OPENED,
            State.OPEN,
            row["kind"],
            SYSTEM_ACTOR,
            _reason(row["kind"], identity, due_at, bool(failed) if failed is not None else None),
            f"declared:{row['kind']}",
            now,
            details=details,
        )

    def _resolve_late(self, client: Client, now: datetime) -> int:
        active = client.query(_ACTIVE_DECLARED, parameters={"kinds": sorted(DECLARED_KINDS)}).named_results()
        rows = [row for row in active if row["state"] != State.REPROCESSING.value]
        if not rows:
            return 0
        found = signalled(client, (row["stripe_event_id"] for row in rows))
        received = {(project, event) for project, event, _ in found}
        transitions = []
        for row in rows:
            key = (row["project"], row["stripe_event_id"])
            arrived = key in received if row["kind"] == Kind.NOT_RECEIVED.value else (*key, row["effect"]) in found
            if not arrived:
                continue
            identity = ExpectationIdentity(
                row["project"], row["stripe_event_id"], row["effect"], row["event_type"], row["service"]
            )
            transitions.append(
                Transition(
                    row["incident_id"],
                    identity,
                    TransitionType.RESOLVED,
                    State.RESOLVED,
                    row["kind"],
                    SYSTEM_ACTOR,
                    "late receipt: the app recorded the event after all",
                    "late_receipt",
                    now,
                    details={"resolved_by": "late_receipt"},
                )
            )
        self.journal.append(transitions, purpose="declared")
        return len(transitions)


def _reason(kind: str, identity: ExpectationIdentity, due_at: datetime, delivery_failed: bool | None) -> str:
    by = due_at.isoformat(timespec="seconds")
    if kind == Kind.EFFECT_MISSING.value:
        return (
            f"the plan for {identity.event_type} requires {identity.display_effect!r}, which got no receipt or "
            f"result by {by} (the event's other effects did)"
        )
    if delivery_failed:
        return (
            f"not received by the app by {by}: Stripe reports its delivery failed or is still retrying (the "
            "webhook endpoint is down or rejects the signature)"
        )
    return (
        f"not received by the app by {by}: Stripe does not report a failed delivery, yet the app recorded no "
        "receipt (the handler lost the event before accepting it)"
    )
