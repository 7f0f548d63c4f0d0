"""Lifecycle routes: reprocess, acknowledge, ignore, notes, and bulk reprocess jobs.

Each action is recorded in the incident log with the caller as actor (``api``, or
``api:<name>`` when the client names its user in ``X-Fulfillwatch-Actor``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Response
from pydantic import BaseModel, Field

from fulfillwatch.incident_engine.incidents import queries
from fulfillwatch.incident_engine.incidents.bulk import SAMPLE_SIZE, BulkJob, BulkReprocessor
from fulfillwatch.incident_engine.incidents.lifecycle import MAX_REASON, ActionError, IncidentActions

from .auth import PrincipalDep
from .context import ContextDep
from .models import IncidentSummary, KindName, StateName

router = APIRouter(prefix="/api", tags=["lifecycle"])
_ID = Path(min_length=1, max_length=256, pattern=r"^[\w.:-]+$")


class ReasonBody(BaseModel):
    """An optional reason recorded with the action."""

    reason: str = Field("", max_length=MAX_REASON)


class RequiredReasonBody(BaseModel):
    """A reason, required."""

    reason: str = Field(min_length=1, max_length=MAX_REASON)


class NoteBody(BaseModel):
    """A note for the timeline."""

    text: str = Field(min_length=1, max_length=MAX_REASON)


class ReprocessAccepted(BaseModel):
    """A reprocess is under way (a second request while one runs returns the same replay id)."""

    incident_id: str
    replay_id: str
    state: str = "reprocessing"
    already_running: bool


class BulkFilter(BaseModel):
    """Which incidents a bulk reprocess covers (active ones unless ``states`` says otherwise)."""

    incident_ids: list[str] = Field(default_factory=list, max_length=10_000, description="Only these incidents")
    states: list[StateName] = Field(default_factory=list)
    kind: KindName | None = None
    event_type: str | None = Field(None, max_length=256)
    effect: str | None = Field(None, max_length=256)
    service: str | None = Field(None, max_length=256)
    since: datetime | None = Field(None, description="Opened at or after")
    until: datetime | None = Field(None, description="Opened before")

    def to_query(self) -> queries.IncidentFilter:
        return queries.IncidentFilter(
            incident_ids=tuple(self.incident_ids),
            states=tuple(self.states),
            kind=self.kind,
            event_type=self.event_type,
            effect=self.effect,
            service=self.service,
            opened_since=self.since,
            opened_until=self.until,
        )


class BulkRequest(BaseModel):
    """A bulk reprocess; ``dry_run`` only counts and samples."""

    filter: BulkFilter = Field(default_factory=lambda: BulkFilter())
    dry_run: bool = False
    reason: str = Field("", max_length=MAX_REASON)


class BulkPreview(BaseModel):
    """What a bulk reprocess would cover."""

    dry_run: bool = True
    count: int
    sample: list[IncidentSummary]


class BulkJobModel(BaseModel):
    """A bulk reprocess job and its progress."""

    id: str
    state: str
    filter: dict[str, Any]
    requested_by: str
    reason: str
    total: int
    requested: int
    already_running: int
    failed: int
    processed: int
    errors: list[str]
    created_at: str
    updated_at: str


def _actions(context: ContextDep) -> IncidentActions:
    if context.actions is None:
        raise HTTPException(503, "lifecycle actions are not available in this process")
    return context.actions


def _bulk(context: ContextDep) -> BulkReprocessor:
    if context.bulk is None:
        raise HTTPException(503, "bulk reprocess is not available in this process")
    return context.bulk


def _run(action: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return action(*args, **kwargs)
    except ActionError as exc:
        raise HTTPException(exc.status, exc.message) from None


def _job(job: BulkJob) -> BulkJobModel:
    return BulkJobModel(**{**job.__dict__, "processed": job.processed})


@router.post(
    "/incidents/{incident_id}/reprocess",
    status_code=202,
    response_model=ReprocessAccepted,
    summary="Send a signed reprocess callback to the app's repair endpoint",
    responses={404: {"description": "No such incident"}, 409: {"description": "Resolved, or no repair target"}},
)
def reprocess(
    principal: PrincipalDep, context: ContextDep, incident_id: Annotated[str, _ID], body: ReasonBody | None = None
) -> ReprocessAccepted:
    """Start a reprocess; the incident becomes ``reprocessing`` and the replay id is returned."""
    started = _run(_actions(context).reprocess, incident_id, principal.actor, body.reason if body else "")
    return ReprocessAccepted(
        incident_id=started.incident_id, replay_id=started.replay_id, already_running=started.already_running
    )


@router.post("/incidents/{incident_id}/acknowledge", response_model=IncidentSummary, summary="Acknowledge")
def acknowledge(
    principal: PrincipalDep, context: ContextDep, incident_id: Annotated[str, _ID], body: ReasonBody | None = None
) -> IncidentSummary:
    """Someone is on it."""
    return IncidentSummary(
        **_run(_actions(context).acknowledge, incident_id, principal.actor, body.reason if body else "")
    )


@router.post("/incidents/{incident_id}/ignore", response_model=IncidentSummary, summary="Ignore (reason required)")
def ignore(
    principal: PrincipalDep, context: ContextDep, incident_id: Annotated[str, _ID], body: RequiredReasonBody
) -> IncidentSummary:
    """No action will be taken; a later failure reopens the incident."""
    return IncidentSummary(**_run(_actions(context).ignore, incident_id, principal.actor, body.reason))


@router.post("/incidents/{incident_id}/notes", response_model=IncidentSummary, summary="Add a note")
def note(
    principal: PrincipalDep, context: ContextDep, incident_id: Annotated[str, _ID], body: NoteBody
) -> IncidentSummary:
    """A note in the incident's timeline."""
    return IncidentSummary(**_run(_actions(context).note, incident_id, principal.actor, body.text))


@router.post(
    "/reprocess",
    response_model=BulkPreview | BulkJobModel,
    summary="Bulk reprocess (or a dry run)",
    responses={202: {"model": BulkJobModel, "description": "Job started"}},
)
def bulk_reprocess(principal: PrincipalDep, context: ContextDep, request: BulkRequest, response: Response) -> Any:
    """``dry_run``: the count and a sample. Otherwise a job starts (202) and reprocesses the
    matching incidents at the configured rate; follow it at ``GET /api/reprocess/{job_id}``."""
    bulk = _bulk(context)
    filters = request.filter.to_query()
    if request.dry_run:
        page = bulk.matching(filters, SAMPLE_SIZE)
        return BulkPreview(count=page.total, sample=[IncidentSummary(**item) for item in page.items])
    job = _run(bulk.start, filters, principal.actor, request.reason or "bulk reprocess")
    response.status_code = 202
    response.headers["Location"] = f"/api/reprocess/{job.id}"
    return _job(job)


@router.get("/reprocess/{job_id}", response_model=BulkJobModel, summary="A bulk reprocess job")
def bulk_job(_: PrincipalDep, context: ContextDep, job_id: Annotated[str, _ID]) -> BulkJobModel:
    """Progress of a bulk reprocess."""
    job = _bulk(context).get(job_id)
    if job is None:
        raise HTTPException(404, f"no bulk job {job_id}")
    return _job(job)
