"""Reprocess callbacks: signed POSTs to the app's repair endpoint, with retries and an audit.

A reprocess request (``reprocess_requested`` in the log, state ``reprocessing``) becomes a
dispatch: the JSON body below, signed with the Standard Webhooks scheme by the
``standardwebhooks`` library with every secret of the service's repair target
(``webhook-id`` = the replay id, the app's idempotency key), delivered by
:func:`.delivery.deliver`. Every attempt is a ``callback_attempt`` row (status or error,
latency, a response excerpt of at most 1 KiB). A rejected or exhausted delivery returns the
incident to ``open`` (``reprocess_failed``, with the reason); a delivered one waits for the
app's result — a success carrying the replay id resolves the incident (the engine does that),
and no result within the target's ``result_timeout_s`` reopens it. For a ``not_received``
incident the body also carries ``stripe_event``: the event as Stripe's Events API returned it.

Dispatch state lives in the log, so a restart resumes: deliveries in flight continue with their
next attempt, delivered ones keep waiting for their result.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

from fulfillwatch.collector_processor.identity import ExpectationIdentity
from fulfillwatch.collector_processor.ingest_auth import DEFAULT_PROJECT
from fulfillwatch.collector_processor.store import Store
from fulfillwatch.incident_engine.config import RepairTarget
from fulfillwatch.incident_engine.delivery.attempts import Attempt, Sleep, deliver, remaining_wait
from fulfillwatch.incident_engine.delivery.signing import signed_request
from fulfillwatch.incident_engine.incidents import log_reads
from fulfillwatch.incident_engine.incidents.incident_log import Journal
from fulfillwatch.incident_engine.incidents.signal_reads import stored_event
from fulfillwatch.incident_engine.model.status import Kind
from fulfillwatch.incident_engine.model.transitions import SYSTEM_ACTOR, State, Transition, TransitionType

_logger = logging.getLogger("fulfillwatch.dispatcher")
#: How often deliveries that were accepted are checked for a result.
WATCH_INTERVAL_S = 5.0


@dataclass(frozen=True)
class DispatchJob:
    """One reprocess to deliver."""

    incident_id: str
    replay_id: str
    identity: ExpectationIdentity
    kind: str
    requested_by: str
    reason: str
    requested_at: datetime
    first_attempt: int = 1
    #: When resuming: what is left of the wait the last attempt asked for.
    first_delay_s: float | None = None
    #: ``not_received``: the event as Stripe's Events API returned it, so the app's repair
    #: endpoint can run its original handler on it.
    stripe_event: Mapping[str, Any] | None = None

    def body(self, attempt: int) -> dict[str, Any]:
        """The JSON document the repair endpoint receives."""
        return {
            "type": "fulfillwatch.reprocess",
            "replay_id": self.replay_id,
            "incident_id": self.incident_id,
            "project": self.identity.project,
            "stripe_event_id": self.identity.stripe_event_id,
            "event_type": self.identity.event_type,
            "effect": self.identity.display_effect,
            "kind": self.kind,
            "attempt": attempt,
            "requested_by": self.requested_by,
            "reason": self.reason,
            "requested_at": self.requested_at.isoformat(),
            **({"stripe_event": dict(self.stripe_event)} if self.stripe_event is not None else {}),
        }

    def transition(
        self,
        kind: TransitionType,
        state: State | None,
        reason: str,
        cause: str,
        details: Mapping[str, object],
        at: datetime | None = None,
    ) -> Transition:
        """A log row about this dispatch (at ``at``, default now)."""
        return Transition(
            self.incident_id,
            self.identity,
            kind,
            state,
            self.kind if state is not None else "",
            SYSTEM_ACTOR,
            reason,
            cause,
            at or datetime.now(timezone.utc),
            self.replay_id,
            dict(details),
        )


class Dispatcher:
    """Delivers reprocess callbacks from the event loop of the process that owns the engine."""

    def __init__(
        self,
        store: Store,
        journal: Journal,
        targets: Mapping[str, RepairTarget],
        service_projects: Mapping[str, str] | None = None,
        *,
        sleep: Sleep = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._store = store
        self._sleep = sleep
        self._transport = transport
        self._journal = journal
        self._targets = dict(targets)
        self._service_projects = dict(service_projects or {})
        self._queue: asyncio.Queue[DispatchJob] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._awaiting: dict[str, tuple[DispatchJob, datetime]] = {}  # replay id → (job, deadline)

    def target_for(self, identity: ExpectationIdentity) -> RepairTarget | None:
        """The repair target of an expectation: its service's, and only if that service belongs
        to the expectation's project (one project's incident never calls another's endpoint)."""
        owner = self._service_projects.get(identity.service, DEFAULT_PROJECT)
        return self._targets.get(identity.service) if owner == identity.project else None

    def submit(self, job: DispatchJob) -> None:
        """Queue a dispatch (safe from any thread)."""
        if self._loop is None or self._queue is None:
            raise RuntimeError("the dispatcher is not running")
        self._loop.call_soon_threadsafe(self._queue.put_nowait, job)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver queued dispatches until ``stop`` is set; resume unfinished ones first."""
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        async with httpx.AsyncClient(transport=self._transport) as client:
            for job in await asyncio.to_thread(self._unfinished):
                self._queue.put_nowait(job)
            watcher = asyncio.create_task(self._watch_results(stop))
            stopped = asyncio.create_task(stop.wait())
            while not stop.is_set():
                getter = asyncio.create_task(self._queue.get())
                done, _ = await asyncio.wait({getter, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break
                task = asyncio.create_task(self._dispatch(client, getter.result()))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            watcher.cancel()
            for task in list(self._tasks):  # sleeping retries: the log lets a restart resume them
                task.cancel()
            await asyncio.gather(watcher, *self._tasks, return_exceptions=True)

    async def _log(self, transitions: list[Transition]) -> None:
        await asyncio.to_thread(self._journal.append, transitions, purpose="dispatcher")

    async def _dispatch(self, client: httpx.AsyncClient, job: DispatchJob) -> None:
        target = self.target_for(job.identity)
        if target is None:
            await self._fail(job, f"no repair target is configured for service {job.identity.service!r}")
            return
        secrets = target.secret_values()
        if job.kind == Kind.NOT_RECEIVED.value and job.stripe_event is None:
            job = replace(job, stripe_event=await asyncio.to_thread(self._stripe_event, job.identity.stripe_event_id))

        def body(attempt: int) -> tuple[bytes, dict[str, str]]:
            return signed_request(job.replay_id, job.body(attempt), secrets)

        async def record(attempt: Attempt) -> None:
            reason = f"callback attempt {attempt.number}: {attempt.describe()}"
            cause = f"{job.replay_id}#{attempt.number}"
            await self._log(
                [
                    job.transition(
                        TransitionType.CALLBACK_ATTEMPT,
                        None,  # informational: the state stays reprocessing
                        reason,
                        cause,
                        {**attempt.details(), "target": target.describe()},
                        at=attempt.at,  # when it was sent: the app's result may come before the answer
                    )
                ]
            )

        try:
            last = await deliver(
                client,
                str(target.url),
                body,
                schedule=target.retry_schedule_s,
                timeout_s=target.timeout_s,
                on_attempt=record,
                first_attempt=job.first_attempt,
                first_delay_s=job.first_delay_s,
                sleep=self._sleep,
            )
        except Exception:  # a bug must not leave the incident stuck in reprocessing
            _logger.exception("dispatch of %s failed", job.replay_id)
            await self._fail(job, "internal error while dispatching the callback (see the server log)")
            return
        if last.outcome == "delivered":
            deadline = last.at + timedelta(seconds=target.result_timeout_s)
            self._awaiting[job.replay_id] = (job, deadline)
        elif last.outcome == "rejected":
            await self._fail(job, f"the repair endpoint rejected the callback ({last.describe()}); not retried")
        else:
            await self._fail(job, f"the callback failed after {last.number} attempts (last: {last.describe()})")

    async def _fail(self, job: DispatchJob, reason: str) -> None:
        # Back to open only if this reprocess still holds the incident (it may have been ignored
        # or resolved meanwhile); otherwise the failure is recorded without changing the state.
        current = await asyncio.to_thread(self._current, job.incident_id)
        state = State.OPEN if current == (State.REPROCESSING.value, job.replay_id) else None
        await self._log([job.transition(TransitionType.REPROCESS_FAILED, state, reason, f"{job.replay_id}:failed", {})])

    async def _watch_results(self, stop: asyncio.Event) -> None:
        """Reopen incidents whose accepted callback produced no result in time."""
        while not stop.is_set():
            await asyncio.sleep(WATCH_INTERVAL_S)
            now = datetime.now(timezone.utc)
            for replay_id, (job, deadline) in list(self._awaiting.items()):
                state = await asyncio.to_thread(self._current, job.incident_id)
                if state != (State.REPROCESSING.value, replay_id):
                    del self._awaiting[replay_id]  # resolved, failed or reprocessed again
                elif now >= deadline:
                    del self._awaiting[replay_id]
                    await self._fail(job, f"no result from the repair endpoint within {deadline - job.requested_at}")

    def _stripe_event(self, stripe_event_id: str) -> dict[str, Any] | None:
        stored = stored_event(self._store.client("dispatcher"), stripe_event_id)
        return stored.raw if stored is not None else None

    def _current(self, incident_id: str) -> tuple[str, str]:
        return log_reads.reprocess_state(self._store.client("dispatcher"), incident_id)

    def _unfinished(self) -> list[DispatchJob]:
        """Dispatches a previous run left in flight (incidents still reprocessing)."""
        client = self._store.client("dispatcher")
        jobs: list[DispatchJob] = []
        now = datetime.now(timezone.utc)
        for incident_id, replay_id in log_reads.reprocessing(client):
            rows = log_reads.rows_of_replay(client, incident_id, replay_id)
            requested = next(
                (r.transition for r in rows if r.transition.transition is TransitionType.REPROCESS_REQUESTED), None
            )
            if requested is None:
                continue
            attempts = [r.transition for r in rows if r.transition.transition is TransitionType.CALLBACK_ATTEMPT]
            job = DispatchJob(
                incident_id,
                replay_id,
                requested.identity,
                requested.kind,
                requested.actor,
                requested.reason,
                requested.at,
            )
            if attempts and attempts[-1].details.get("outcome") == "delivered":
                target = self.target_for(requested.identity)
                wait = timedelta(seconds=target.result_timeout_s if target is not None else 0)
                self._awaiting[replay_id] = (job, attempts[-1].at + wait)
            else:
                left = 0.0
                if attempts:
                    asked = attempts[-1].details.get("next_delay_s")
                    asked_s = float(asked) if isinstance(asked, (int, float)) else None
                    left = remaining_wait(attempts[-1].at, asked_s, now)
                jobs.append(replace(job, first_attempt=len(attempts) + 1, first_delay_s=left))
        if jobs or self._awaiting:
            _logger.info("resuming %d callback deliveries, %d awaiting results", len(jobs), len(self._awaiting))
        return jobs
