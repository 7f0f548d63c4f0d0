"""Response models of the HTTP API (they are also its OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

StateName = Literal["open", "acknowledged", "reprocessing", "resolved", "ignored"]
KindName = Literal["result_failed", "result_missing", "duplicate_suppressed"]


class IncidentSummary(BaseModel):
    """An incident as listed."""

    id: str
    kind: str = Field(description="result_failed | result_missing | duplicate_suppressed")
    state: str = Field(description="open | acknowledged | reprocessing | resolved | ignored")
    stripe_event_id: str
    event_type: str
    effect: str = Field(description="The business effect; the event type when none was named")
    service: str = Field(description="service.name of the app that emitted the signals")
    opened_at: datetime
    updated_at: datetime
    reason: str = Field(description="Reason of the latest state change")
    replay_id: str = Field("", description="Replay id of the latest reprocess request")


class IncidentPageModel(BaseModel):
    """One page of incidents, most recently updated first."""

    items: list[IncidentSummary]
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
    state: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class ExpectationModel(BaseModel):
    """One (event, effect) expectation and what its signals say now."""

    incident_id: str
    stripe_event_id: str
    effect: str
    event_type: str
    service: str
    health: str = Field(description="pending | healthy | failing")
    kind: str | None = None
    reason: str = ""
    receipt_at: datetime | None
    due_at: datetime | None
    last_result: dict[str, Any] | None


class IncidentDetail(IncidentSummary):
    """An incident with its whole story."""

    expectation: ExpectationModel | None
    event: dict[str, Any] = Field(default_factory=dict, description="Key fields of the Stripe event")
    timeline: list[TimelineEntry]


class EventView(BaseModel):
    """Everything known about one Stripe event."""

    stripe_event_id: str
    expectations: list[ExpectationModel]
    incidents: list[IncidentSummary]
    signals: list[dict[str, Any]]


class HealthModel(BaseModel):
    """Health of the process: store, engine, ingest."""

    status: Literal["ok", "degraded"]
    store: dict[str, Any]
    engine: dict[str, Any]
    ingest: dict[str, int]
