"""What people do to incidents: acknowledge, ignore, note, reprocess.

Every action is a row in the incident log with its actor, time and reason. Actions are
serialised within the process (one lock), so two clicks at the same moment cannot both start
a reprocess: the second sees the first's ``reprocessing`` state and gets its replay id.
Errors are the domain's (:mod:`.errors`); the API maps them to HTTP.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from fulfillwatch.collector_processor.store import Store
from fulfillwatch.incident_engine.delivery.reprocess import Dispatcher, DispatchJob
from fulfillwatch.incident_engine.incidents import log_reads
from fulfillwatch.incident_engine.incidents.errors import Conflict, Invalid, NotFound, Unavailable
from fulfillwatch.incident_engine.incidents.incident_log import Journal
from fulfillwatch.incident_engine.incidents.records import IncidentSummary
from fulfillwatch.incident_engine.model.status import Kind
from fulfillwatch.incident_engine.model.transitions import ACTIVE_STATES, State, Transition, TransitionType

MAX_REASON = 2000


@dataclass(frozen=True)
class Actor:
    """Who acts: a name for the log (a token's, or a person's), and what they came through."""

    name: str
    #: The API token a person acted through (the dashboard's), "" when the token is the actor.
    via: str = ""


@dataclass(frozen=True)
class ReprocessStarted:
    """The outcome of a reprocess request."""

    incident_id: str
    replay_id: str
    already_running: bool


def _machine_now() -> datetime:
    return datetime.now(timezone.utc)


class IncidentActions:
    """Lifecycle actions, written through the journal, stamped with ``clock``'s time (this
    machine's; tests pass the engine's controllable clock, so that an action and the signals
    it is compared with — a failure newer than an ignore reopens it — share one time)."""

    def __init__(
        self,
        store: Store,
        journal: Journal,
        dispatcher: Dispatcher | None,
        *,
        clock: Callable[[], datetime] = _machine_now,
    ) -> None:
        self._store = store
        self._journal = journal
        self._dispatcher = dispatcher
        self._clock = clock
        self._lock = threading.Lock()

    def _incident(self, incident_id: str) -> IncidentSummary:
        found = log_reads.get_incident(self._store.client("actions"), incident_id)
        if found is None:
            raise NotFound(f"no incident {incident_id}")
        return found

    def _row(
        self,
        incident: IncidentSummary,
        kind: TransitionType,
        state: State | None,
        actor: Actor,
        reason: str,
        *,
        replay_id: str = "",
        details: Mapping[str, object] | None = None,
    ) -> Transition:
        recorded = dict(details or {})
        if actor.via:
            recorded["via"] = actor.via
        return Transition(
            incident.id,
            incident.identity,
            kind,
            state,
            incident.kind if state is not None else "",
            actor.name,
            reason[:MAX_REASON],
            f"{kind.value}:{replay_id or uuid.uuid4().hex}",
            self._clock(),
            replay_id,
            recorded,
        )

    def acknowledge(self, incident_id: str, actor: Actor, reason: str = "") -> IncidentSummary:
        """Someone is on it. Idempotent; only active incidents can be acknowledged."""
        with self._lock:
            incident = self._incident(incident_id)
            if incident.state not in ACTIVE_STATES:
                raise Conflict(
                    f"incident {incident_id} is {incident.state.value}: only active incidents are acknowledged"
                )
            if incident.state is State.OPEN:
                self._journal.append(
                    [self._row(incident, TransitionType.ACKNOWLEDGED, State.ACKNOWLEDGED, actor, reason)]
                )
            return self._incident(incident_id)

    def ignore(self, incident_id: str, actor: Actor, reason: str) -> IncidentSummary:
        """Decide not to act; the reason is required. A later failure reopens it."""
        if not reason.strip():
            raise Invalid("ignoring an incident needs a reason")
        with self._lock:
            incident = self._incident(incident_id)
            if incident.state is State.RESOLVED:
                raise Conflict(f"incident {incident_id} is already resolved")
            if incident.kind == Kind.SIGNALS_STOPPED.value:
                raise Conflict(
                    "a signals_stopped incident is about a service, not one event: there is nothing to reprocess "
                    "(fix the webhook endpoint; `fulfillwatch reconcile` then lists the events it missed)"
                )
            if incident.state is not State.IGNORED:
                self._journal.append([self._row(incident, TransitionType.IGNORED, State.IGNORED, actor, reason)])
            return self._incident(incident_id)

    def note(self, incident_id: str, actor: Actor, text: str) -> IncidentSummary:
        """Add a note to the timeline (the state does not change)."""
        if not text.strip():
            raise Invalid("a note needs text")
        with self._lock:
            incident = self._incident(incident_id)
            self._journal.append([self._row(incident, TransitionType.NOTE, None, actor, text)])
            return self._incident(incident_id)

    def reprocess(self, incident_id: str, actor: Actor, reason: str = "", *, bulk_job_id: str = "") -> ReprocessStarted:
        """Send a signed callback to the service's repair endpoint (see
        :mod:`~fulfillwatch.incident_engine.delivery.reprocess`)."""
        if self._dispatcher is None:
            raise Unavailable("reprocess is not available in this process (no dispatcher)")
        with self._lock:
            incident = self._incident(incident_id)
            if incident.state is State.REPROCESSING:
                return ReprocessStarted(incident_id, incident.replay_id, already_running=True)
            if incident.state is State.RESOLVED:
                raise Conflict(f"incident {incident_id} is already resolved")
            if incident.kind == Kind.SIGNALS_STOPPED.value:
                raise Conflict(
                    "a signals_stopped incident is about a service, not one event: there is nothing to reprocess "
                    "(fix the webhook endpoint; `fulfillwatch reconcile` then lists the events it missed)"
                )
            target = self._dispatcher.target_for(incident.identity)
            if target is None:
                service = incident.identity.service
                raise Conflict(
                    f"no repair target is configured for service {service!r} of project "
                    f'{incident.identity.project!r}: add [repair_targets."{service}"] with url and secrets '
                    "to the config file (the service must belong to the incident's project)"
                )
            replay_id = f"rpl_{uuid.uuid4().hex}"
            details: dict[str, object] = {"target": target.describe()}
            if bulk_job_id:
                details["bulk_job_id"] = bulk_job_id
            row = self._row(
                incident,
                TransitionType.REPROCESS_REQUESTED,
                State.REPROCESSING,
                actor,
                reason or "reprocess requested",
                replay_id=replay_id,
                details=details,
            )
            self._journal.append([row])
            self._dispatcher.submit(
                DispatchJob(
                    incident_id=incident_id,
                    replay_id=replay_id,
                    identity=incident.identity,
                    kind=incident.kind,
                    requested_by=actor.name,
                    reason=row.reason,
                    requested_at=row.at,
                )
            )
            return ReprocessStarted(incident_id, replay_id, already_running=False)
