"""Response and request models of the HTTP API (they are also its OpenAPI schema).

States and kinds are the engine's own enums, so the schema, the validation of filters and the
dashboard (which reads them from ``/openapi.json``) cannot drift from what the engine writes.
Each model is built from the typed rows of the query layer by one ``of()``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from fulfillwatch.incident_engine.incidents.records import IncidentSummary, SignalRecord, StripeEventRecord
from fulfillwatch.incident_engine.incidents.timeline import EventFacts, ExpectationView, TimelineItem
from fulfillwatch.incident_engine.model.status import Kind, ResultInfo
from fulfillwatch.incident_engine.model.transitions import State


class IncidentSummaryModel(BaseModel):
    """An incident as listed."""

    id: str
    kind: Kind
    state: State
    project: str = Field(description="The project that owns the incident's service")
    stripe_event_id: str
    event_type: str
    effect: str = Field(description="The business effect; the event type when none was named")
    service: str = Field(description="service.name of the app that emitted the signals")
    opened_at: datetime
    updated_at: datetime
    reason: str = Field(description="Reason of the latest state change")
    replay_id: str = Field("", description="Replay id of the latest reprocess request")

    @classmethod
    def of(cls, incident: IncidentSummary) -> IncidentSummaryModel:
        """The API form of a summary."""
        return cls(**_summary_fields(incident))


def _summary_fields(incident: IncidentSummary) -> dict[str, Any]:
    identity = incident.identity
    return {
        "id": incident.id,
        "kind": Kind(incident.kind),
        "state": incident.state,
        "project": identity.project,
        "stripe_event_id": identity.stripe_event_id,
        "event_type": identity.event_type,
        "effect": identity.display_effect,
        "service": identity.service,
        "opened_at": incident.opened_at,
        "updated_at": incident.updated_at,
        "reason": incident.reason,
        "replay_id": incident.replay_id,
    }


class IncidentPageModel(BaseModel):
    """One page of incidents, most recently updated first."""

    items: list[IncidentSummaryModel]
    total: int
    limit: int
    offset: int
    next_offset: int | None = Field(None, description="Offset of the next page, if any")


class TimelineEntry(BaseModel):
    """One receipt, result or incident transition."""

    at: datetime
    type: str = Field(description="receipt | result | a transition (opened, resolved, ...)")
    actor: str | None = None
    reason: str | None = None
    state: State | None = None
    details: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, item: TimelineItem) -> TimelineEntry:
        """The API form of a timeline item."""
        return cls(
            at=item.at,
            type=item.type,
            actor=item.actor,
            reason=item.reason,
            state=State(item.state) if item.state else None,
            details=item.details,
        )


class ResultModel(BaseModel):
    """A result signal, as the verdict saw it."""

    signal_id: str
    at: datetime
    outcome: str
    error_type: str
    error_message: str
    replay_id: str
    attempt: int

    @classmethod
    def of(cls, result: ResultInfo) -> ResultModel:
        """The API form of a result."""
        return cls(
            signal_id=result.signal_id,
            at=result.at,
            outcome=result.outcome,
            error_type=result.error_type,
            error_message=result.error_message,
            replay_id=result.replay_id,
            attempt=result.attempt,
        )


class ExpectationModel(BaseModel):
    """One (project, event, effect) expectation and what its signals say now."""

    incident_id: str
    project: str
    stripe_event_id: str
    effect: str
    event_type: str
    service: str
    health: str = Field(description="pending | healthy | failing")
    kind: Kind | None = None
    reason: str = ""
    receipt_at: datetime | None
    due_at: datetime | None
    last_result: ResultModel | None

    @classmethod
    def of(cls, view: ExpectationView) -> ExpectationModel:
        """The API form of an expectation's verdict."""
        identity = view.identity
        return cls(
            incident_id=view.incident_id,
            project=identity.project,
            stripe_event_id=identity.stripe_event_id,
            effect=identity.display_effect,
            event_type=identity.event_type,
            service=identity.service,
            health=view.health,
            kind=Kind(view.kind) if view.kind else None,
            reason=view.reason,
            receipt_at=view.receipt_at,
            due_at=view.due_at,
            last_result=ResultModel.of(view.last_result) if view.last_result else None,
        )


class EventFactsModel(BaseModel):
    """Key fields of the Stripe event, as the app reported them."""

    event_type: str | None = None
    customer: str | None = None
    amount: int | None = None
    currency: str | None = None
    livemode: bool | None = None
    account: str | None = None

    @classmethod
    def of(cls, facts: EventFacts) -> EventFactsModel:
        """The API form of the event's facts."""
        return cls(**facts.__dict__)


class StripeEventModel(BaseModel):
    """A Stripe event as the reconciler read it from Stripe's Events API."""

    stripe_event_id: str
    event_type: str
    account: str = Field(description="The Connect account ('' for the key's own account)")
    created: datetime = Field(description="When Stripe created the event")
    livemode: bool
    object_id: str = Field(description="The id of the event's data.object (a checkout session, an invoice, ...)")
    customer: str
    amount: int | None = Field(None, description="In the currency's smallest unit")
    currency: str
    delivery_failed: bool = Field(
        description="Stripe lists it as not delivered (delivery_success=false: failed or still being retried)"
    )
    seen_at: datetime = Field(description="When the reconciler first read it")
    raw: dict[str, Any] = Field(description="The event as Stripe's API returned it")

    @classmethod
    def of(cls, record: StripeEventRecord) -> StripeEventModel:
        """The API form of a stored Stripe event."""
        return cls(**vars(record))


class IncidentDetail(IncidentSummaryModel):
    """An incident with its whole story."""

    expectation: ExpectationModel | None
    event: EventFactsModel = Field(default_factory=EventFactsModel, description="Key fields of the Stripe event")
    stripe_event: StripeEventModel | None = Field(
        None, description="Stripe's own record of the event, when the reconciler read it"
    )
    timeline: list[TimelineEntry]


class SignalModel(BaseModel):
    """One stored receipt or result."""

    signal: str = Field(description="receipt | result")
    signal_id: str
    project: str
    stripe_event_id: str
    effect: str
    event_type: str
    service: str
    outcome: str
    at: datetime
    due_at: datetime | None
    attempt: int
    error_type: str
    error_message: str
    replay_id: str
    livemode: bool | None
    account: str
    customer: str
    amount: int | None
    currency: str
    trace_id: str
    span_id: str
    receipt_trace_id: str
    receipt_span_id: str
    source: str
    ingested_at: datetime

    @classmethod
    def of(cls, signal: SignalRecord) -> SignalModel:
        """The API form of a stored signal (the effect in display form)."""
        fields = {key: value for key, value in signal.__dict__.items() if key != "identity"}
        identity = signal.identity
        return cls(
            **fields,
            project=identity.project,
            stripe_event_id=identity.stripe_event_id,
            effect=identity.display_effect,
            event_type=identity.event_type,
            service=identity.service,
        )


class EventView(BaseModel):
    """Everything known about one Stripe event."""

    stripe_event_id: str
    expectations: list[ExpectationModel]
    incidents: list[IncidentSummaryModel]
    signals: list[SignalModel]
    stripe_event: StripeEventModel | None = Field(
        None, description="Stripe's own record of the event, when the reconciler read it"
    )


class StoreHealth(BaseModel):
    """Whether the store answers (the location only for authenticated callers)."""

    reachable: bool
    location: str | None = None
    error: str | None = None


class EngineHealth(BaseModel):
    """The engine's heartbeat."""

    heartbeat_at: datetime | None = None
    heartbeat_age_s: float | None = None
    stale: bool = True
    engine_id: str | None = None
    last_tick_ms: float | None = None
    last_tick_expectations: int | None = None
    last_tick_transitions: int | None = None


class StripeHealth(BaseModel):
    """The Stripe reconciler: is Stripe's Events API being read?"""

    ok: bool = Field(description="The last poll succeeded")
    error: str = Field("", description="Why the last poll failed (e.g. the key was refused: 401)")
    last_poll_at: datetime | None = Field(None, description="When the last successful poll ended")
    warnings: list[str] = Field(default_factory=list, description="e.g. a cursor beyond Stripe's 30 days")


class HealthModel(BaseModel):
    """Health of the process: store and engine (``/healthz``: no location, no counters)."""

    status: str = Field(description="ok | degraded")
    store: StoreHealth
    engine: EngineHealth
    stripe: StripeHealth | None = Field(
        None, description="The Stripe reconciler, when configured (its failure does not stop detection)"
    )
    ingest: dict[str, int] | None = Field(None, description="Ingest counters (GET /api/health only)")
    failing: list[str] = Field(default_factory=list, description="Readiness checks failing now")


class Probe(BaseModel):
    """The answer of ``/livez`` and ``/readyz``."""

    status: str = Field(description="alive | ready | not ready")
    failing: list[str] = Field(default_factory=list)
