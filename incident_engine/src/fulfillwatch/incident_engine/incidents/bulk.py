"""Bulk reprocess: one request, many incidents, at a bounded rate, with visible progress.

A job snapshots the incidents matching its filter when it starts (active ones: ``open`` and
``acknowledged`` unless the filter names states), then requests a reprocess for each at
``bulk_reprocess_per_s`` — the repair endpoint is the app's, and a burst of thousands of
callbacks is exactly what it should not get. Progress is a row in ``fw_bulk_jobs`` (updated as
the job runs) and, on every incident, the ``bulk_job_id`` of its ``reprocess_requested`` row.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from fulfillwatch.collector_processor.store import Store, insert_rows
from fulfillwatch.incident_engine.incidents import log_reads
from fulfillwatch.incident_engine.incidents.errors import ActionError, Invalid
from fulfillwatch.incident_engine.incidents.incident_log import next_seq
from fulfillwatch.incident_engine.incidents.lifecycle import Actor, IncidentActions
from fulfillwatch.incident_engine.schema import BULK_JOBS_TABLE

_logger = logging.getLogger("fulfillwatch.bulk")
#: At most this many incidents in one job (a wider filter is an operator mistake).
MAX_JOB_SIZE = 50_000
SAMPLE_SIZE = 10
DEFAULT_STATES = ("open", "acknowledged")


@dataclass(frozen=True)
class BulkJob:
    """A bulk reprocess and how far it got."""

    id: str
    state: str  # running | done | interrupted
    filter: dict[str, Any]
    requested_by: str
    reason: str
    total: int
    requested: int = 0
    already_running: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    created_at: str = ""
    updated_at: str = ""
    #: The API token a person requested it through ("" when the token itself is the actor).
    requested_via: str = ""

    @property
    def processed(self) -> int:
        """Incidents handled so far."""
        return self.requested + self.already_running + self.failed


class BulkReprocessor:
    """Runs bulk jobs in background threads (one per job)."""

    def __init__(self, store: Store, actions: IncidentActions, rate_per_s: float) -> None:
        self._store = store
        self._actions = actions
        self._interval = 1.0 / rate_per_s
        self._stop = threading.Event()

    def matching(self, filters: log_reads.IncidentFilter, limit: int) -> log_reads.IncidentPage:
        """Incidents a job with this filter would reprocess (the first ``limit`` and the count)."""
        chosen = filters if filters.states else replace(filters, states=DEFAULT_STATES)
        return log_reads.list_incidents(self._store.client("bulk"), chosen, limit, 0)

    def start(self, filters: log_reads.IncidentFilter, actor: Actor, reason: str) -> BulkJob:
        """Snapshot the matching incidents and start requesting reprocesses."""
        page = self.matching(filters, MAX_JOB_SIZE)
        if page.total > MAX_JOB_SIZE:
            raise Invalid(f"the filter matches {page.total} incidents; narrow it to at most {MAX_JOB_SIZE}")
        now = datetime.now(timezone.utc).isoformat()
        job = BulkJob(
            id=f"bulk_{uuid.uuid4().hex[:16]}",
            state="running",
            filter=_describe(filters),
            requested_by=actor.name,
            requested_via=actor.via,
            reason=reason,
            total=len(page.items),
            created_at=now,
            updated_at=now,
        )
        self._save(job)
        ids = [item.id for item in page.items]
        threading.Thread(target=self._run, args=(job, ids), name=job.id, daemon=True).start()
        return job

    def get(self, job_id: str) -> BulkJob | None:
        """A job by id."""
        rows = (
            self._store.client("bulk")
            .query(
                f"SELECT document FROM {BULK_JOBS_TABLE} FINAL WHERE job_id = {{id:String}}", parameters={"id": job_id}
            )
            .result_rows
        )
        return BulkJob(**json.loads(rows[0][0])) if rows else None

    def mark_interrupted(self) -> int:
        """Jobs left running by a previous process are over; say so (at start)."""
        rows = self._store.client("bulk").query(f"SELECT document FROM {BULK_JOBS_TABLE} FINAL").result_rows
        interrupted = 0
        for (document,) in rows:
            job = BulkJob(**json.loads(document))
            if job.state == "running":
                self._save(replace(job, state="interrupted"))
                interrupted += 1
        return interrupted

    def stop(self) -> None:
        """Ask running jobs to stop after their current incident."""
        self._stop.set()

    def _run(self, job: BulkJob, incident_ids: list[str]) -> None:
        for number, incident_id in enumerate(incident_ids, 1):
            if self._stop.is_set():
                job = replace(job, state="interrupted")
                break
            started = time.monotonic()
            try:
                actor = Actor(job.requested_by, job.requested_via)
                result = self._actions.reprocess(incident_id, actor, job.reason, bulk_job_id=job.id)
                if result.already_running:
                    job = replace(job, already_running=job.already_running + 1)
                else:
                    job = replace(job, requested=job.requested + 1)
            except ActionError as exc:
                job = replace(job, failed=job.failed + 1, errors=[*job.errors, f"{incident_id}: {exc.message}"][-20:])
            except Exception:  # one bad incident must not stop the job
                _logger.exception("bulk job %s: reprocess of %s failed", job.id, incident_id)
                job = replace(job, failed=job.failed + 1, errors=[*job.errors, f"{incident_id}: internal error"][-20:])
            if number % 10 == 0 or number == len(incident_ids):
                self._save(replace(job, updated_at=datetime.now(timezone.utc).isoformat()))
            time.sleep(max(0.0, self._interval - (time.monotonic() - started)))
        else:
            job = replace(job, state="done")
        self._save(replace(job, updated_at=datetime.now(timezone.utc).isoformat()))

    def _save(self, job: BulkJob) -> None:
        insert_rows(
            self._store.client("bulk"),
            BULK_JOBS_TABLE,
            [[job.id, json.dumps(asdict(job)), next_seq(), datetime.now(timezone.utc)]],
            ["job_id", "document", "version", "updated_at"],
        )


def _describe(filters: log_reads.IncidentFilter) -> dict[str, Any]:
    described = {key: value for key, value in asdict(filters).items() if value not in (None, (), [])}
    return {key: value.isoformat() if isinstance(value, datetime) else value for key, value in described.items()}
