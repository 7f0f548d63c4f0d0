"""The status of an expectation: a pure function of its stored signals and ``now``.

An *expectation* is one ``(project, stripe event id, effect)``
(:class:`~fulfillwatch.collector_processor.identity.ExpectationIdentity`). Its signals are
summarised by SQL (:mod:`~fulfillwatch.incident_engine.detection.expectations`) into an
:class:`Expectation`; :func:`assess` decides what that means. No clock, no I/O: the same rows
and the same ``now`` always give the same answer, which is what makes engine restarts and
replays harmless (deadlines are data: a receipt carries its due time).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from fulfillwatch.collector_processor.identity import ExpectationIdentity
from fulfillwatch.instrumentation import vocabulary as v


class Kind(str, enum.Enum):
    """Incident kinds."""

    RESULT_FAILED = "result_failed"
    RESULT_MISSING = "result_missing"
    DUPLICATE_SUPPRESSED = "duplicate_suppressed"
    #: Stripe has the event, the app never recorded a receipt for it (``detection/declared``).
    NOT_RECEIVED = "not_received"
    #: A planned effect of an event got no signal of its own (``detection/declared``).
    EFFECT_MISSING = "effect_missing"
    #: A service stopped recording receipts of an event type (``detection/silence``).
    SIGNALS_STOPPED = "signals_stopped"


#: Kinds opened by a declaration (Stripe's record, a plan) rather than by the app's signals.
DECLARED_KINDS = frozenset({Kind.NOT_RECEIVED.value, Kind.EFFECT_MISSING.value})


class Health(str, enum.Enum):
    """What the signals of an expectation say."""

    PENDING = "pending"  # no success yet, deadline not reached
    HEALTHY = "healthy"  # the latest success/failure result is a success
    FAILING = "failing"  # an incident is warranted (see the kind)


@dataclass(frozen=True)
class ResultInfo:
    """One result signal."""

    signal_id: str
    at: datetime
    outcome: str
    error_type: str = ""
    error_message: str = ""
    replay_id: str = ""
    attempt: int = 0
    #: When the store first received it (store clock); ``None`` when not needed.
    ingested_at: datetime | None = None


@dataclass(frozen=True)
class Expectation:
    """Summary of one expectation's signals (built by SQL aggregates)."""

    incident_id: str
    identity: ExpectationIdentity
    first_at: datetime
    receipt_at: datetime | None
    due_at: datetime | None
    last_result: ResultInfo | None  # the latest success or failure
    has_skipped: bool
    new_results: tuple[ResultInfo, ...] = ()  # results stored since the previous evaluation

    def deadline(self, default_timeout: timedelta) -> datetime:
        """When a success is due: the receipt's deadline, else first signal + default timeout."""
        return self.due_at if self.due_at is not None else self.first_at + default_timeout


@dataclass(frozen=True)
class Assessment:
    """The verdict on an expectation at one instant."""

    health: Health
    kind: Kind | None = None
    reason: str = ""
    cause: str = ""  # what triggered it: a signal id or "deadline:<time>"


def describe_failure(result: ResultInfo) -> str:
    """``ErrorType: message`` for a failed result."""
    message = result.error_message.strip()
    return f"{result.error_type}: {message}" if message else result.error_type or "failure"


def assess(expectation: Expectation, now: datetime, default_timeout: timedelta) -> Assessment:
    """Decide the health of an expectation at ``now``.

    * latest success/failure result is a failure → ``result_failed`` (at once, no deadline);
    * latest is a success → healthy (resolves any incident);
    * no success/failure yet: before the deadline pending; after it ``duplicate_suppressed``
      when only ``skipped`` results were seen (the idempotency bug), else ``result_missing``.
    """
    last = expectation.last_result
    if last is not None and last.outcome == v.OUTCOME_FAILURE:
        return Assessment(Health.FAILING, Kind.RESULT_FAILED, describe_failure(last), last.signal_id)
    if last is not None and last.outcome == v.OUTCOME_SUCCESS:
        return Assessment(Health.HEALTHY, cause=last.signal_id)
    deadline = expectation.deadline(default_timeout)
    if now < deadline:
        return Assessment(Health.PENDING)
    cause = f"deadline:{deadline.isoformat()}"
    if expectation.has_skipped:
        return Assessment(
            Health.FAILING,
            Kind.DUPLICATE_SUPPRESSED,
            "only 'skipped' results by the deadline: the effect was reported already applied, "
            "but no run ever succeeded",
            cause,
        )
    waited = "receipt" if expectation.receipt_at is not None else "first signal"
    return Assessment(
        Health.FAILING,
        Kind.RESULT_MISSING,
        f"no result by the deadline {deadline.isoformat(timespec='seconds')} ({waited} at "
        f"{(expectation.receipt_at or expectation.first_at).isoformat(timespec='seconds')})",
        cause,
    )
