"""Lifecycle routes: reprocess, acknowledge, ignore, notes, and bulk reprocess jobs.

Each action is recorded in the incident log with its actor: the API token's name, or the person
an ``act_as`` token names (see :mod:`.auth`). Acting on one incident needs the ``operate``
scope; bulk reprocess needs ``admin`` and an explicit filter (or ``"all": true``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Response
from pydantic import BaseModel, Field, model_validator

from fulfillwatch.incident_engine.api.auth import AdminDep, OperateDep, ReadDep
from fulfillwatch.incident_engine.api.context import ContextDep
from fulfillwatch.incident_engine.api.dates import date_problem
from fulfillwatch.incident_engine.api.models import IncidentSummaryModel
from fulfillwatch.incident_engine.incidents import log_reads
from fulfillwatch.incident_engine.incidents.bulk import SAMPLE_SIZE, BulkJob, BulkReprocessor
from fulfillwatch.incident_engine.incidents.errors import Unavailable
from fulfillwatch.incident_engine.incidents.lifecycle import MAX_REASON, IncidentActions
from fulfillwatch.incident_engine.model.status import Kind
from fulfillwatch.incident_engine.model.transitions import State

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
    state: State = State.REPROCESSING
    already_running: bool


class BulkFilter(BaseModel):
    """Which incidents a bulk reprocess covers (active ones unless ``states`` says otherwise).

    An empty filter is refused; ``all: true`` says "every active incident" on purpose."""

    all: bool = Field(False, description="Cover every matching active incident even with no other condition")
    incident_ids: list[str] = Field(default_factory=list, max_length=10_000, description="Only these incidents")
    states: list[State] = Field(default_factory=list)
    kind: Kind | None = None
    project: str | None = Field(None, max_length=256)
    event_type: str | None = Field(None, max_length=256)
    effect: str | None = Field(None, max_length=256)
    service: str | None = Field(None, max_length=256)
    since: datetime | None = Field(None, description="Opened at or after")
    until: datetime | None = Field(None, description="Opened before")

    @model_validator(mode="after")
    def _dates(self) -> BulkFilter:
        problem = date_problem(since=self.since, until=self.until)
        if problem is not None:
            raise ValueError(problem)
        return self

    def is_empty(self) -> bool:
        """No condition at all (``all`` aside)."""
        return not any(value for name, value in self.__dict__.items() if name != "all")

    def to_query(self) -> log_reads.IncidentFilter:
        return log_reads.IncidentFilter(
            incident_ids=tuple(self.incident_ids),
            states=tuple(state.value for state in self.states),
            kind=self.kind.value if self.kind else None,
            project=self.project,
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
    sample: list[IncidentSummaryModel]


class BulkJobModel(BaseModel):
    """A bulk reprocess job and its progress."""

    id: str
    state: str
    filter: dict[str, Any]
    requested_by: str
    requested_via: str = ""
    reason: str
    total: int
    requested: int
    already_running: int
    failed: int
    processed: int
    errors: list[str]
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, job: BulkJob) -> BulkJobModel:
        """The API form of a job."""
        return cls(**{**job.__dict__, "processed": job.processed})


def _actions(context: ContextDep) -> IncidentActions:
    if context.actions is None:
        raise Unavailable("lifecycle actions are not available in this process")
    return context.actions


def _bulk(context: ContextDep) -> BulkReprocessor:
    if context.bulk is None:
        raise Unavailable("bulk reprocess is not available in this process")
    return context.bulk


@router.post(
    "/incidents/{incident_id}/reprocess",
    status_code=202,
    response_model=ReprocessAccepted,
    summary="Send a signed reprocess callback to the app's repair endpoint",
    responses={404: {"description": "No such incident"}, 409: {"description": "Resolved, or no repair target"}},
)
def reprocess(
    principal: OperateDep, context: ContextDep, incident_id: Annotated[str, _ID], body: ReasonBody | None = None
) -> ReprocessAccepted:
    """Start a reprocess; the incident becomes ``reprocessing`` and the replay id is returned."""
    started = _actions(context).reprocess(incident_id, principal.actor, body.reason if body else "")
    return ReprocessAccepted(
        incident_id=started.incident_id, replay_id=started.replay_id, already_running=started.already_running
    )


@router.post("/incidents/{incident_id}/acknowledge", response_model=IncidentSummaryModel, summary="Acknowledge")
def acknowledge(
    principal: OperateDep, context: ContextDep, incident_id: Annotated[str, _ID], body: ReasonBody | None = None
) -> IncidentSummaryModel:
    """Someone is on it."""
    return IncidentSummaryModel.of(
        _actions(context).acknowledge(incident_id, principal.actor, body.reason if body else "")
    )


@router.post("/incidents/{incident_id}/ignore", response_model=IncidentSummaryModel, summary="Ignore (reason required)")
def ignore(
    principal: OperateDep, context: ContextDep, incident_id: Annotated[str, _ID], body: RequiredReasonBody
) -> IncidentSummaryModel:
    """No action will be taken; a later failure reopens the incident."""
    return IncidentSummaryModel.of(_actions(context).ignore(incident_id, principal.actor, body.reason))


@router.post("/incidents/{incident_id}/notes", response_model=IncidentSummaryModel, summary="Add a note")
def note(
    principal: OperateDep, context: ContextDep, incident_id: Annotated[str, _ID], body: NoteBody
) -> IncidentSummaryModel:
    """A note in the incident's timeline."""
    return IncidentSummaryModel.of(_actions(context).note(incident_id, principal.actor, body.text))


@router.post(
    "/reprocess",
    response_model=BulkPreview | BulkJobModel,
    summary="Bulk reprocess (or a dry run)",
    responses={
        202: {"model": BulkJobModel, "description": "Job started"},
        422: {"description": "No filter (send filter.all = true to mean every active incident)"},
    },
)
def bulk_reprocess(principal: AdminDep, context: ContextDep, request: BulkRequest, response: Response) -> Any:
    """``dry_run``: the count and a sample. Otherwise a job starts (202) and reprocesses the
    matching incidents at the configured rate; follow it at ``GET /api/reprocess/{job_id}``."""
    if request.filter.is_empty() and not request.filter.all:
        raise HTTPException(
            422, "a bulk reprocess needs a filter; to cover every active incident send {'filter': {'all': true}}"
        )
    bulk = _bulk(context)
    filters = request.filter.to_query()
    if request.dry_run:
        page = bulk.matching(filters, SAMPLE_SIZE)
        return BulkPreview(count=page.total, sample=[IncidentSummaryModel.of(item) for item in page.items])
    job = bulk.start(filters, principal.actor, request.reason or "bulk reprocess")
    response.status_code = 202
    response.headers["Location"] = f"/api/reprocess/{job.id}"
    return BulkJobModel.of(job)


@router.get("/reprocess/{job_id}", response_model=BulkJobModel, summary="A bulk reprocess job")
def bulk_job(_: ReadDep, context: ContextDep, job_id: Annotated[str, _ID]) -> BulkJobModel:
    """Progress of a bulk reprocess."""
    job = _bulk(context).get(job_id)
    if job is None:
        raise HTTPException(404, f"no bulk job {job_id}")
    return BulkJobModel.of(job)
