"""``/api/incidents`` (list, detail) and ``/api/events/{id}`` routes (``read`` scope)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from fulfillwatch.incident_engine.api.auth import ReadDep
from fulfillwatch.incident_engine.api.context import ClientDep, ContextDep
from fulfillwatch.incident_engine.api.dates import check_dates
from fulfillwatch.incident_engine.api.models import (
    EventFactsModel,
    EventView,
    ExpectationModel,
    IncidentDetail,
    IncidentPageModel,
    IncidentSummaryModel,
    SignalModel,
    StripeEventModel,
    TimelineEntry,
)
from fulfillwatch.incident_engine.detection.expectations import expectations_of_event
from fulfillwatch.incident_engine.incidents import log_reads, signal_reads
from fulfillwatch.incident_engine.incidents.timeline import build_timeline, event_facts, expectation_view
from fulfillwatch.incident_engine.model.status import Kind
from fulfillwatch.incident_engine.model.transitions import State

router = APIRouter(prefix="/api", tags=["incidents"])
_ID = Path(min_length=1, max_length=256, pattern=r"^[\w.:-]+$")


def _default_timeout(context: ContextDep) -> timedelta:
    return timedelta(seconds=context.settings.default_timeout_s)


@router.get("/incidents", response_model=IncidentPageModel, summary="List incidents")
def list_incidents(
    _: ReadDep,
    client: ClientDep,
    state: Annotated[State | None, Query(description="Current state")] = None,
    kind: Annotated[Kind | None, Query(description="Incident kind")] = None,
    project: Annotated[str | None, Query(max_length=256)] = None,
    event_type: Annotated[str | None, Query(max_length=256)] = None,
    effect: Annotated[str | None, Query(max_length=256)] = None,
    service: Annotated[str | None, Query(max_length=256)] = None,
    stripe_event_id: Annotated[str | None, Query(max_length=256, description="Exact Stripe event id")] = None,
    since: Annotated[datetime | None, Query(description="Opened at or after (RFC 3339)")] = None,
    until: Annotated[datetime | None, Query(description="Opened before (RFC 3339)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> IncidentPageModel:
    """Incidents, most recently updated first, filtered and paginated on the server."""
    check_dates(since=since, until=until)
    filters = log_reads.IncidentFilter(
        states=(state.value,) if state else (),
        kind=kind.value if kind else None,
        project=project,
        event_type=event_type,
        effect=effect,
        service=service,
        stripe_event_id=stripe_event_id,
        opened_since=since,
        opened_until=until,
    )
    page = log_reads.list_incidents(client, filters, limit, offset)
    following = offset + len(page.items)
    return IncidentPageModel(
        items=[IncidentSummaryModel.of(item) for item in page.items],
        total=page.total,
        limit=limit,
        offset=offset,
        next_offset=following if following < page.total else None,
    )


@router.get(
    "/incidents/{incident_id}",
    response_model=IncidentDetail,
    summary="One incident with its timeline",
    responses={404: {"description": "No such incident"}},
)
def get_incident(
    _: ReadDep,
    client: ClientDep,
    context: ContextDep,
    incident_id: Annotated[str, _ID],
) -> IncidentDetail:
    """The incident, its expectation's current verdict, and every receipt, result and
    transition in time order."""
    summary = log_reads.get_incident(client, incident_id)
    if summary is None:
        raise HTTPException(404, f"no incident {incident_id}")
    signals = signal_reads.signals_of(client, summary.identity.stripe_event_id, summary.identity)
    expectation = next(
        (e for e in expectations_of_event(client, summary.identity.stripe_event_id) if e.incident_id == incident_id),
        None,
    )
    now = datetime.now(timezone.utc)
    stripe = signal_reads.stored_event(client, summary.identity.stripe_event_id)
    return IncidentDetail(
        **IncidentSummaryModel.of(summary).model_dump(),
        expectation=ExpectationModel.of(expectation_view(expectation, now, _default_timeout(context)))
        if expectation
        else None,
        event=EventFactsModel.of(event_facts(signals)),
        stripe_event=StripeEventModel.of(stripe) if stripe is not None else None,
        timeline=[
            TimelineEntry.of(item) for item in build_timeline(signals, log_reads.entries(client, incident_id), stripe)
        ],
    )


@router.get("/events/{stripe_event_id}", response_model=EventView, summary="Everything about one Stripe event")
def get_event(
    _: ReadDep,
    client: ClientDep,
    context: ContextDep,
    stripe_event_id: Annotated[str, _ID],
) -> EventView:
    """Every expectation of the event with its verdict, its incidents and its signals.

    An unknown event id is not an error: the lists are empty.
    """
    now = datetime.now(timezone.utc)
    expectations = expectations_of_event(client, stripe_event_id)
    stripe = signal_reads.stored_event(client, stripe_event_id)
    page = log_reads.list_incidents(client, log_reads.IncidentFilter(stripe_event_id=stripe_event_id), 500, 0)
    return EventView(
        stripe_event_id=stripe_event_id,
        expectations=[ExpectationModel.of(expectation_view(e, now, _default_timeout(context))) for e in expectations],
        incidents=[IncidentSummaryModel.of(item) for item in page.items],
        signals=[SignalModel.of(signal) for signal in signal_reads.signals_of(client, stripe_event_id)],
        stripe_event=StripeEventModel.of(stripe) if stripe is not None else None,
    )
