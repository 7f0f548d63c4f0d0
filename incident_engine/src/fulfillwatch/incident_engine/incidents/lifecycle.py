"""What people do to incidents: acknowledge, ignore, note, reprocess.

Every action is a row in the incident log with its actor, time and reason. Actions are
serialised within the process (one lock), so two clicks at the same moment cannot both start
a reprocess: the second sees the first's ``reprocessing`` state and gets its replay id.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from fulfillwatch.collector_processor.store import Store
from fulfillwatch.incident_engine.delivery.reprocess import Dispatcher, DispatchJob
from fulfillwatch.incident_engine.incidents import queries
from fulfillwatch.incident_engine.incidents.incident_log import Journal
from fulfillwatch.incident_engine.model.transitions import ACTIVE_STATES, State, Transition, TransitionType

MAX_REASON = 2000


class ActionError(Exception):
    """An action that cannot be taken; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ReprocessStarted:
    """The outcome of a reprocess request."""

    incident_id: str
    replay_id: str
    already_running: bool


class IncidentActions:
    """Lifecycle actions, written through the journal."""

    def __init__(self, store: Store, journal: Journal, dispatcher: Dispatcher | None) -> None:
        self._store = store
        self._journal = journal
        self._dispatcher = dispatcher
        self._lock = threading.Lock()

    def _incident(self, incident_id: str) -> dict[str, Any]:
        found = queries.get_incident(self._store.client("actions"), incident_id)
        if found is None:
            raise ActionError(404, f"no incident {incident_id}")
        return found

    def _row(
        self,
        incident: dict[str, Any],
        kind: TransitionType,
        state: State | None,
        actor: str,
        reason: str,
        *,
        replay_id: str = "",
        details: dict[str, object] | None = None,
    ) -> Transition:
        effect = incident["effect"] if incident["effect"] != incident["event_type"] else ""
        return Transition(
            incident_id=incident["id"],
            transition=kind,
            state=state,
            kind=incident["kind"] if state is not None else "",
            actor=actor,
            reason=reason[:MAX_REASON],
            cause=f"{kind.value}:{replay_id or uuid.uuid4().hex}",
            at=datetime.now(timezone.utc),
            stripe_event_id=incident["stripe_event_id"],
            effect=effect,
            event_type=incident["event_type"],
            service=incident["service"],
            replay_id=replay_id,
            details=details or {},
        )

    def acknowledge(self, incident_id: str, actor: str, reason: str = "") -> dict[str, Any]:
        """Someone is on it. Idempotent; only active incidents can be acknowledged."""
        with self._lock:
            incident = self._incident(incident_id)
            state = State(incident["state"])
            if state not in ACTIVE_STATES:
                raise ActionError(
                    409, f"incident {incident_id} is {state.value}: only active incidents are acknowledged"
                )
            if state is State.OPEN:
                self._journal.append(
                    [self._row(incident, TransitionType.ACKNOWLEDGED, State.ACKNOWLEDGED, actor, reason)]
                )
            return self._incident(incident_id)

    def ignore(self, incident_id: str, actor: str, reason: str) -> dict[str, Any]:
        """Decide not to act; the reason is required. A later failure reopens it."""
        if not reason.strip():
            raise ActionError(422, "ignoring an incident needs a reason")
        with self._lock:
            incident = self._incident(incident_id)
            state = State(incident["state"])
            if state is State.RESOLVED:
                raise ActionError(409, f"incident {incident_id} is already resolved")
            if state is not State.IGNORED:
                self._journal.append([self._row(incident, TransitionType.IGNORED, State.IGNORED, actor, reason)])
            return self._incident(incident_id)

    def note(self, incident_id: str, actor: str, text: str) -> dict[str, Any]:
        """Add a note to the timeline (the state does not change)."""
        if not text.strip():
            raise ActionError(422, "a note needs text")
        with self._lock:
            incident = self._incident(incident_id)
            self._journal.append([self._row(incident, TransitionType.NOTE, None, actor, text)])
            return self._incident(incident_id)

    def reprocess(self, incident_id: str, actor: str, reason: str = "", *, bulk_job_id: str = "") -> ReprocessStarted:
        """Send a signed callback to the service's repair endpoint (see :mod:`.dispatcher`)."""
        if self._dispatcher is None:
            raise ActionError(503, "reprocess is not available in this process (no dispatcher)")
        with self._lock:
            incident = self._incident(incident_id)
            state = State(incident["state"])
            if state is State.REPROCESSING:
                return ReprocessStarted(incident_id, incident["replay_id"], already_running=True)
            if state is State.RESOLVED:
                raise ActionError(409, f"incident {incident_id} is already resolved")
            target = self._dispatcher.target_for(incident["service"])
            if target is None:
                raise ActionError(
                    409,
                    f"no repair target is configured for service {incident['service']!r}: add "
                    f'[repair_targets."{incident["service"]}"] with url and secrets to the config file',
                )
            replay_id = f"rpl_{uuid.uuid4().hex}"
            details: dict[str, object] = {"url": str(target.url)}
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
                    service=incident["service"],
                    stripe_event_id=incident["stripe_event_id"],
                    event_type=incident["event_type"],
                    effect=incident["effect"],
                    kind=incident["kind"] if state is not None else "",
                    requested_by=actor,
                    reason=row.reason,
                    requested_at=row.at,
                )
            )
            return ReprocessStarted(incident_id, replay_id, already_running=False)
