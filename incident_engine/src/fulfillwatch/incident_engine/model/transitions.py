"""Incident states, transitions, and the pure rules that turn a verdict into log rows.

An incident exists per expectation (its id derives from ``(project, stripe event id, effect)``); its
state is ``open → acknowledged → reprocessing → resolved``, or ``ignored``. A later failure
reopens a resolved or ignored incident. :func:`plan` compares what the signals say
(:class:`~.status.Assessment`) with the incident's current head and returns the transitions to
append — nothing else. Each transition has a deterministic id derived from its cause, so
planning the same situation twice yields the same rows.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from fulfillwatch.collector_processor.identity import ExpectationIdentity
from fulfillwatch.incident_engine.model.status import (
    DECLARED_KINDS,
    Assessment,
    Expectation,
    Health,
    ResultInfo,
    describe_failure,
)

SYSTEM_ACTOR = "system"


class State(str, enum.Enum):
    """Incident states."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    REPROCESSING = "reprocessing"
    RESOLVED = "resolved"
    IGNORED = "ignored"


#: States in which an incident still needs someone.
ACTIVE_STATES = frozenset({State.OPEN, State.ACKNOWLEDGED, State.REPROCESSING})


class TransitionType(str, enum.Enum):
    """Rows of the incident log."""

    OPENED = "opened"
    RESULT_SEEN = "result_seen"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    ACKNOWLEDGED = "acknowledged"
    IGNORED = "ignored"
    NOTE = "note"
    REPROCESS_REQUESTED = "reprocess_requested"
    CALLBACK_ATTEMPT = "callback_attempt"
    REPROCESS_FAILED = "reprocess_failed"
    ALERT_ATTEMPT = "alert_attempt"


@dataclass(frozen=True)
class IncidentHead:
    """The current state of an incident, derived from its log."""

    incident_id: str
    state: State
    kind: str
    state_since: datetime  # when the latest state change happened
    opened_at: datetime  # first row of the incident (store clock)
    #: Causes of the state- or kind-changing rows already logged (dedupes re-reads).
    causes: frozenset[str] = frozenset()
    #: Causes of audit-only rows (``result_seen`` without a state). Kept apart from ``causes``:
    #: a result first logged as audit (it became visible between two reads of one tick) must
    #: still be able to resolve or re-kind the incident in the next tick.
    audited: frozenset[str] = frozenset()
    replay_id: str = ""  # the reprocess in flight, if any


@dataclass(frozen=True)
class Transition:
    """One row to append to the incident log — the only way anything about an incident is
    recorded (the engine, people's actions, callback and alert attempts all write these)."""

    incident_id: str
    identity: ExpectationIdentity
    transition: TransitionType
    state: State | None  # None: an informational row, the state does not change
    kind: str  # "": the kind does not change
    actor: str
    reason: str
    cause: str
    at: datetime
    replay_id: str = ""
    details: Mapping[str, object] = field(default_factory=dict)

    @property
    def transition_id(self) -> str:
        """Deterministic id: the same cause never yields two rows of the same transition."""
        key = f"{self.incident_id}|{self.transition.value}|{self.cause}"
        return hashlib.sha256(key.encode()).hexdigest()[:24]


def _result_details(result: ResultInfo) -> dict[str, object]:
    details: dict[str, object] = {
        "signal_id": result.signal_id,
        "signal_at": result.at.isoformat(),
        "outcome": result.outcome,
        "attempt": result.attempt,
    }
    if result.error_type:
        details["error_type"] = result.error_type
        details["error_message"] = result.error_message
    if result.replay_id:
        details["replay_id"] = result.replay_id
    return details


def plan(expectation: Expectation, head: IncidentHead | None, verdict: Assessment, now: datetime) -> list[Transition]:
    """Transitions the engine appends for one expectation (often none)."""

    def make(
        kind_of: TransitionType,
        state: State | None,
        kind: str,
        reason: str,
        cause: str,
        details: Mapping[str, object] | None = None,
        replay_id: str = "",
    ) -> Transition:
        return Transition(
            expectation.incident_id,
            expectation.identity,
            kind_of,
            state,
            kind,
            SYSTEM_ACTOR,
            reason,
            cause,
            now,
            replay_id,
            details or {},
        )

    last = expectation.last_result
    if head is None:
        if verdict.health is not Health.FAILING or verdict.kind is None:
            return []
        details = _result_details(last) if last is not None and last.signal_id == verdict.cause else {}
        return [make(TransitionType.OPENED, State.OPEN, verdict.kind.value, verdict.reason, verdict.cause, details)]

    decisive = _decisive(make, expectation, head, verdict)
    planned: list[Transition] = []
    # Audit: results first stored after the incident opened, while it is still active. (Results
    # stored before it opened are part of why it opened; their replays are not news.)
    if head.state in ACTIVE_STATES:
        for result in sorted(expectation.new_results, key=lambda r: r.at):
            if result.signal_id in head.causes or result.signal_id in head.audited:
                continue
            if decisive is not None and result.signal_id == decisive.cause:
                continue
            if result.ingested_at is not None and result.ingested_at <= head.opened_at:
                continue
            reason = describe_failure(result) if result.error_type else f"{result.outcome} result"
            planned.append(
                make(
                    TransitionType.RESULT_SEEN,
                    None,  # audit only: state and kind unchanged
                    "",
                    reason,
                    result.signal_id,
                    _result_details(result),
                    result.replay_id,
                )
            )
    if decisive is not None:
        planned.append(decisive)
    return planned


def _decisive(
    make: Callable[..., Transition], expectation: Expectation, head: IncidentHead, verdict: Assessment
) -> Transition | None:
    """The state- or kind-changing transition for an existing incident, if any."""
    if verdict.cause in head.causes:
        return None
    last = expectation.last_result
    # A success resolves an active incident. An ignored one stays ignored (a person closed it,
    # and the engine does not watch closed incidents for successes: resolving it only when a
    # success happened to be evaluated for another reason made the outcome depend on timing).
    if verdict.health is Health.HEALTHY and head.state in ACTIVE_STATES and last is not None:
        by_reprocess = bool(last.replay_id)
        reason = f"reprocess succeeded (replay {last.replay_id})" if by_reprocess else "late success"
        details = {**_result_details(last), "resolved_by": "reprocess" if by_reprocess else "late_success"}
        return make(TransitionType.RESOLVED, State.RESOLVED, head.kind, reason, verdict.cause, details, last.replay_id)
    if verdict.health is not Health.FAILING or verdict.kind is None:
        return None
    kind = verdict.kind.value
    from_result = last is not None and last.signal_id == verdict.cause
    details = _result_details(last) if last is not None and from_result else {}
    replay_id = last.replay_id if last is not None and from_result else ""
    if head.state in (State.RESOLVED, State.IGNORED):
        # A person's ignore is reopened only by a failure newer than it. A resolution (always
        # the engine's, on a success) by any failure the verdict now finds latest: that failure
        # happened after the success, whenever it arrived (until 2026-12-03 it was compared with
        # the resolution's time too, so a failure delivered late never reopened). A declared
        # incident resolved by its late receipt reopens on any verdict: from there the
        # expectation runs its ordinary course, and a missed deadline must not hide behind
        # "late receipt".
        late_receipt = head.state is State.RESOLVED and head.kind in DECLARED_KINDS and "late_receipt" in head.causes
        after = head.state is State.RESOLVED or (last is not None and last.at > head.state_since)
        if (last is not None and from_result and after) or late_receipt:
            return make(TransitionType.REOPENED, State.OPEN, kind, verdict.reason, verdict.cause, details, replay_id)
        return None
    if kind != head.kind or head.state is State.REPROCESSING:
        # A new verdict on an active incident: the kind changes, or a repair failed.
        state = State.OPEN if head.state is State.REPROCESSING else head.state
        return make(TransitionType.RESULT_SEEN, state, kind, verdict.reason, verdict.cause, details, replay_id)
    return None
