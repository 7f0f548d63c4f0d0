"""The silence watch: a service that stops recording receipts opens ``signals_stopped``.

Every other check starts from something that happened; this one notices that nothing does —
the webhook endpoint was removed in a deploy, its signing secret rotated on one side, Stripe
disabled it after days of failures. For each ``[silence."<service>"]`` and event type it keeps
the time of the newest receipt (``fw_engine_state``, advanced from the receipts that arrive,
read like the plans' — by the arrivals' primary-key range, then the signals of those events by
key) and opens one incident per (service, type) when:

* with ``[stripe]`` reconciling: no receipt for ``quiet_after_s`` while Stripe shows an event of
  that type newer than the last receipt (Stripe is sending, the app is not recording);
* without: no receipt for ``quiet_after_s`` after there had been some (healthchecks' "it
  stopped").

A receipt after the incident opened resolves it (``receipts resumed``); a later silence reopens
it. Its identity is ``(project, "silence:<service>:<type>", type)``: one incident per watch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from clickhouse_connect.driver.client import Client

from fulfillwatch.collector_processor.identity import ExpectationIdentity
from fulfillwatch.collector_processor.ingest_auth import DEFAULT_PROJECT
from fulfillwatch.collector_processor.signals import SIGNALS_TABLE
from fulfillwatch.incident_engine.detection import arrived
from fulfillwatch.incident_engine.detection.engine_state import read_states, write_states
from fulfillwatch.incident_engine.detection.identities import incident_ids
from fulfillwatch.incident_engine.incidents.incident_log import Journal
from fulfillwatch.incident_engine.model.status import Kind
from fulfillwatch.incident_engine.model.transitions import SYSTEM_ACTOR, State, Transition, TransitionType
from fulfillwatch.incident_engine.stripe_config import SilenceWatch

_POSITION = "silence_position"

_LATEST_RECEIPTS = f"""
    SELECT service, event_type, max(ingested_at)
    FROM {SIGNALS_TABLE}
    WHERE signal = 'receipt' AND has({{services:Array(String)}}, service) AND {arrived.RECEIPTS_ARRIVED_SQL}
    GROUP BY service, event_type
"""


@dataclass(frozen=True)
class Watch:
    """One watched (service, event type)."""

    project: str
    service: str
    event_type: str
    quiet_after: timedelta

    @property
    def key(self) -> str:
        """Its state row in ``fw_engine_state``."""
        return f"silence:{self.project}:{self.service}:{self.event_type}"

    def identity(self) -> ExpectationIdentity:
        """The expectation its incident is about."""
        return ExpectationIdentity(
            self.project, f"silence:{self.service}:{self.event_type}", "", self.event_type, self.service
        )


def watches(config: Mapping[str, SilenceWatch], service_projects: Mapping[str, str]) -> list[Watch]:
    """Every (service, type) the configuration watches."""
    return [
        Watch(service_projects.get(service, DEFAULT_PROJECT), service, event_type, timedelta(seconds=w.quiet_after_s))
        for service, w in config.items()
        for event_type in w.event_types
    ]


class SilenceCheck:
    """Opens and resolves ``signals_stopped`` incidents (see the module docstring)."""

    def __init__(self, journal: Journal, watched: list[Watch], *, stripe_reconciling: bool) -> None:
        self.journal = journal
        self.watched = watched
        self.stripe_reconciling = stripe_reconciling

    def check(
        self, client: Client, now: datetime, arrived_until: datetime, stripe_latest: Mapping[str, int]
    ) -> tuple[int, int]:
        """One check at ``now`` over receipts stored up to ``arrived_until`` (the store's clock);
        ``stripe_latest`` is the reconciler's newest ``created`` per type. Returns (opened, resolved)."""
        states = read_states(client, [_POSITION, *(w.key for w in self.watched)])
        since = arrived.since(states.get(_POSITION), arrived_until)
        services = sorted({w.service for w in self.watched})
        rows = client.query(
            _LATEST_RECEIPTS, parameters={"services": services, "since": since, "until": arrived_until}
        ).result_rows
        newest = {(str(service), str(event_type)): at for service, event_type, at in rows}
        transitions: list[Transition] = []
        updates: list[tuple[str, dict[str, Any], datetime]] = [(_POSITION, arrived.position(arrived_until), now)]
        for watch in self.watched:
            state = dict(states.get(watch.key) or {})
            last = _time(state.get("last"))
            seen = newest.get((watch.service, watch.event_type))
            if seen is not None and (last is None or seen > last):
                last = seen
                state["last"] = seen.isoformat()
            silent_since = _time(state.get("silent_since"))
            if silent_since is not None and last is not None and last > silent_since:
                transitions.append(self._transition(watch, TransitionType.RESOLVED, State.RESOLVED, last, now))
                state["silent_since"] = None
            elif silent_since is None and self._silent(watch, last, now, stripe_latest):
                again = TransitionType.REOPENED if state.get("opened_before") else TransitionType.OPENED
                transitions.append(self._transition(watch, again, State.OPEN, last, now))
                state["silent_since"] = (last or now).isoformat()
                state["opened_before"] = True
            updates.append((watch.key, state, now))
        # The log first: a crash before the state is written repeats the same (deterministic) rows.
        ids = incident_ids(client, [t.identity for t in transitions])
        self.journal.append(
            [replace(t, incident_id=i) for t, i in zip(transitions, ids, strict=True)], purpose="silence"
        )
        write_states(client, updates)
        opened = sum(t.state is State.OPEN for t in transitions)
        return opened, len(transitions) - opened

    def _silent(self, watch: Watch, last: datetime | None, now: datetime, stripe_latest: Mapping[str, int]) -> bool:
        quiet = last is None or now - last > watch.quiet_after
        if not self.stripe_reconciling:
            return last is not None and quiet
        created = stripe_latest.get(watch.event_type)
        if created is None:
            return False
        stripe_newer = datetime.fromtimestamp(created, tz=timezone.utc)
        return quiet and (last is None or stripe_newer > last)

    def _transition(
        self, watch: Watch, kind_of: TransitionType, state: State, last: datetime | None, now: datetime
    ) -> Transition:
        since = last.isoformat(timespec="seconds") if last is not None else "never"
        if kind_of is TransitionType.RESOLVED:
            reason, cause = f"receipts resumed ({since})", f"resumed:{since}"
        else:
            minutes = round(watch.quiet_after.total_seconds() / 60)
            waiting = " while Stripe shows newer events of this type" if self.stripe_reconciling else ""
            reason = (
                f"{watch.service} recorded no {watch.event_type} receipt for more than {minutes} min "
                f"(last: {since}){waiting}"
            )
            cause = f"silent:{since}"
        identity = watch.identity()
        return Transition(
            "",  # filled below: the incident id is derived from the identity in SQL
            identity,
            kind_of,
            state,
            Kind.SIGNALS_STOPPED.value,
            SYSTEM_ACTOR,
            reason,
            cause,
            now,
            details={"last_receipt_at": since, "quiet_after_s": watch.quiet_after.total_seconds()},
        )


def _time(text: object) -> datetime | None:
    return datetime.fromisoformat(str(text)) if text else None
