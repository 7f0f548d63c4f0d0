"""Repair endpoints: verify Fulfillwatch's signed reprocess callbacks and run the app's repair.

When an on-call engineer clicks *Reprocess*, Fulfillwatch POSTs a JSON document to the app's
repair endpoint, signed with the Standard Webhooks scheme (``webhook-id`` = the replay id,
``webhook-timestamp``, ``webhook-signature: v1,<base64 HMAC-SHA256>``). The app's repair function
runs inside :func:`~fulfillwatch.instrumentation.fulfillment`, so its outcome is recorded as a
result carrying the replay id: a success resolves the incident, a failure reopens it.

With FastAPI or Starlette::

    from fulfillwatch.instrumentation.repair import repair_router

    def grant_again(request: RepairRequest) -> None:      # idempotent, like the original job
        if request.not_received:                          # Stripe has the event, the app never got it:
            handle_stripe_event(request.stripe_event)     # the original webhook handler's work
        else:
            grant_credits(request.stripe_event_id)

    app.include_router(repair_router(grant_again, secrets=[os.environ["FULFILLWATCH_REPAIR_SECRET"]]))

Elsewhere, call :func:`handle_repair_request` with the request's headers and raw body bytes
and answer with its status and JSON body; or :func:`verify_repair_request` alone.

Needs the ``repair`` extra (``pip install 'fulfillwatch-instrumentation[repair]'``), which
brings the ``standardwebhooks`` library. The signatures also verify with any other Standard
Webhooks implementation.
"""

import asyncio
import base64
import binascii
import hmac
import inspect
import json
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from ._receipt import record_receipt
from ._result import error_type, fulfillment

#: The incident kind of an event Stripe has and the app never recorded.
NOT_RECEIVED = "not_received"
#: Both directions, like every reference implementation of Standard Webhooks.
TOLERANCE = timedelta(minutes=5)
_REQUIRED = ("replay_id", "incident_id", "stripe_event_id", "event_type")


class RepairVerificationError(Exception):
    """A repair request that must not be acted on; ``status_code`` is what to answer."""

    status_code = 400


class MalformedRepairRequest(RepairVerificationError):
    """Missing headers, an unreadable body, or fields that do not belong together."""


class InvalidSignature(RepairVerificationError):
    """No signature matches any of the secrets (wrong secret, or a tampered body)."""

    status_code = 401


class TimestampOutsideTolerance(RepairVerificationError):
    """``webhook-timestamp`` is more than 5 minutes from now (a stale or replayed capture)."""

    status_code = 401


class ReplayedRequest(RepairVerificationError):
    """This replay id was already handled (the dispatcher retried, or someone replays it)."""

    status_code = 409


@dataclass(frozen=True)
class RepairRequest:
    """A verified reprocess callback."""

    replay_id: str
    incident_id: str
    stripe_event_id: str
    event_type: str
    effect: str
    kind: str
    attempt: int
    requested_by: str
    reason: str
    timestamp: datetime
    payload: Mapping[str, Any] = field(repr=False)
    #: ``kind == "not_received"``: the Stripe event as Stripe's Events API returned it — the app
    #: never received it, so the repair runs the original webhook handler's work on it.
    stripe_event: Mapping[str, Any] | None = field(default=None, repr=False)

    @property
    def not_received(self) -> bool:
        """The app never recorded this event: run the original handler's work on :attr:`stripe_event`."""
        return self.kind == NOT_RECEIVED


class SeenReplayIds(Protocol):
    """Where handled replay ids are remembered (share one across processes in production:
    a database table or Redis ``SET NX EX`` implements it)."""

    def add(self, replay_id: str) -> bool:
        """Remember ``replay_id``; ``False`` when it was already there."""

    def discard(self, replay_id: str) -> None:
        """Forget ``replay_id`` (its repair failed: a retry must be allowed to run)."""


class InMemorySeenReplayIds:
    """A process-local :class:`SeenReplayIds` that forgets ids after ``ttl`` (default 1 day)."""

    def __init__(self, ttl: timedelta = timedelta(days=1), max_ids: int = 100_000) -> None:
        self._ttl = ttl.total_seconds()
        self._max = max_ids
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, replay_id: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if len(self._seen) >= self._max:
                self._seen = {key: at for key, at in self._seen.items() if now - at < self._ttl}
            seen_at = self._seen.get(replay_id)
            if seen_at is not None and now - seen_at < self._ttl:
                return False
            self._seen[replay_id] = now
            return True

    def discard(self, replay_id: str) -> None:
        with self._lock:
            self._seen.pop(replay_id, None)


def _signatures(header: str) -> list[bytes]:
    found: list[bytes] = []
    for entry in header.split(" "):
        version, _, signature = entry.partition(",")
        if version != "v1" or not signature:
            continue  # other schemes (v1a) or junk: ignored, as the spec says
        try:
            found.append(base64.b64decode(signature, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found


def verify_signature(
    headers: Mapping[str, str], body: bytes | str, secrets: Sequence[str] | str, *, now: datetime | None = None
) -> tuple[str, datetime, str]:
    """Check the Standard Webhooks headers of a request; return ``(webhook id, timestamp, body
    text)``. Raises :class:`MalformedRepairRequest`, :class:`TimestampOutsideTolerance` or
    :class:`InvalidSignature`."""
    from standardwebhooks import Webhook

    lowered = {key.lower(): value for key, value in headers.items()}
    webhook_id = lowered.get("webhook-id", "")
    timestamp_text = lowered.get("webhook-timestamp", "")
    signature_header = lowered.get("webhook-signature", "")
    if not (webhook_id and timestamp_text and signature_header):
        raise MalformedRepairRequest("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        timestamp = datetime.fromtimestamp(int(timestamp_text), tz=timezone.utc)
    except (ValueError, OverflowError, OSError):
        raise MalformedRepairRequest("webhook-timestamp is not a Unix time in seconds") from None
    current = now or datetime.now(timezone.utc)
    if abs(current - timestamp) > TOLERANCE:
        raise TimestampOutsideTolerance(
            f"webhook-timestamp is {abs(current - timestamp)} away from now (tolerance 5 min)"
        )
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
    except UnicodeDecodeError:
        raise MalformedRepairRequest("the body is not UTF-8") from None
    offered = _signatures(signature_header)
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    if not keys:
        raise ValueError("no secrets given to verify with")
    matched = False
    for secret in keys:
        expected = base64.b64decode(Webhook(secret).sign(webhook_id, timestamp, text).split(",", 1)[1])
        # compare_digest for every offered signature: constant time, whatever matches.
        matched = any(hmac.compare_digest(expected, candidate) for candidate in offered) or matched
    if not matched:
        raise InvalidSignature("no signature matches (wrong secret, or the body was changed)")
    return webhook_id, timestamp, text


def verify_repair_request(
    headers: Mapping[str, str],
    body: bytes | str,
    secrets: Sequence[str] | str,
    *,
    seen: SeenReplayIds | None = None,
    now: datetime | None = None,
) -> RepairRequest:
    """Check a reprocess callback and return it typed.

    ``secrets`` are the ``whsec_`` secrets of this endpoint; during a rotation list the old and
    the new one. Raises :class:`MalformedRepairRequest`, :class:`TimestampOutsideTolerance`,
    :class:`InvalidSignature` or — when ``seen`` is given and already holds the replay id —
    :class:`ReplayedRequest`.
    """
    webhook_id, timestamp, text = verify_signature(headers, body, secrets, now=now)
    request = _parse(webhook_id, text, timestamp)
    if seen is not None and not seen.add(request.replay_id):
        raise ReplayedRequest(f"replay {request.replay_id} was already handled")
    return request


def _parse(webhook_id: str, text: str, timestamp: datetime) -> RepairRequest:
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedRepairRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise MalformedRepairRequest("the body is not a JSON object")
    missing = [name for name in _REQUIRED if not isinstance(payload.get(name), str) or not payload[name]]
    if missing:
        raise MalformedRepairRequest(f"the body lacks {', '.join(missing)}")
    if payload["replay_id"] != webhook_id:
        raise MalformedRepairRequest("replay_id in the body differs from the webhook-id header")
    attempt = payload.get("attempt", 1)
    stripe_event = payload.get("stripe_event")
    if stripe_event is not None and (
        not isinstance(stripe_event, dict) or stripe_event.get("id") != payload["stripe_event_id"]
    ):
        raise MalformedRepairRequest("stripe_event is not the Stripe event this callback is about")
    return RepairRequest(
        replay_id=payload["replay_id"],
        incident_id=payload["incident_id"],
        stripe_event_id=payload["stripe_event_id"],
        event_type=payload["event_type"],
        effect=str(payload.get("effect") or payload["event_type"]),
        kind=str(payload.get("kind") or ""),
        attempt=attempt if isinstance(attempt, int) else 1,
        requested_by=str(payload.get("requested_by") or ""),
        reason=str(payload.get("reason") or ""),
        timestamp=timestamp,
        payload=payload,
        stripe_event=stripe_event,
    )


@dataclass(frozen=True)
class RepairResponse:
    """What to answer the dispatcher."""

    status_code: int
    body: dict[str, Any]


Repair = Callable[[RepairRequest], Any]


def _rejected(exc: RepairVerificationError) -> RepairResponse:
    if isinstance(exc, ReplayedRequest):
        # The dispatcher retries only when it did not hear back; the work is done: say so.
        return RepairResponse(200, {"status": "duplicate", "detail": str(exc)})
    return RepairResponse(exc.status_code, {"status": "rejected", "error": str(exc)})


def _failed(request: RepairRequest, exc: BaseException, seen: SeenReplayIds | None) -> RepairResponse:
    if seen is not None:
        seen.discard(request.replay_id)  # let the dispatcher's retry run the repair again
    return RepairResponse(
        500,
        {"status": "failed", "replay_id": request.replay_id, "error_type": error_type(exc), "error": str(exc)[:500]},
    )


def _repaired(request: RepairRequest) -> RepairResponse:
    return RepairResponse(200, {"status": "repaired", "replay_id": request.replay_id})


def _run_scope(request: RepairRequest) -> Any:
    receipt = None
    if request.not_received:
        # The app accepts the event now, for the first time: its receipt, then the repair's result.
        receipt = record_receipt(request.stripe_event_id, effect=request.effect, event_type=request.event_type)
    return fulfillment(
        request.stripe_event_id,
        effect=request.effect,
        event_type=request.event_type,
        replay_id=request.replay_id,
        receipt=receipt,
    )


def handle_repair_request(
    headers: Mapping[str, str],
    body: bytes | str,
    repair: Repair,
    secrets: Sequence[str] | str,
    *,
    seen: SeenReplayIds | None = None,
) -> RepairResponse:
    """Verify, run ``repair(request)`` inside ``fulfillment(...)``, and say what to answer:
    200 repaired (or duplicate), 4xx for a request that must not be acted on, 500 when the
    repair raised (the failure is recorded; the dispatcher will retry)."""
    try:
        request = verify_repair_request(headers, body, secrets, seen=seen)
    except RepairVerificationError as exc:
        return _rejected(exc)
    try:
        with _run_scope(request):
            repair(request)
    except Exception as exc:  # noqa: BLE001 - the app's error: recorded as the result, reported to the caller
        return _failed(request, exc, seen)
    return _repaired(request)


async def handle_repair_request_async(
    headers: Mapping[str, str],
    body: bytes | str,
    repair: Callable[[RepairRequest], Awaitable[Any]] | Repair,
    secrets: Sequence[str] | str,
    *,
    seen: SeenReplayIds | None = None,
) -> RepairResponse:
    """:func:`handle_repair_request` for async frameworks; ``repair`` may be a coroutine function
    (awaited) or a plain one (run in a worker thread)."""
    try:
        request = verify_repair_request(headers, body, secrets, seen=seen)
    except RepairVerificationError as exc:
        return _rejected(exc)
    try:
        async with _run_scope(request):
            if inspect.iscoroutinefunction(repair):
                await repair(request)
            else:
                await asyncio.to_thread(repair, request)
    except Exception as exc:  # noqa: BLE001 - the app's error: recorded as the result, reported to the caller
        return _failed(request, exc, seen)
    return _repaired(request)


def repair_router(
    repair: Callable[[RepairRequest], Awaitable[Any]] | Repair,
    secrets: Sequence[str] | str,
    *,
    path: str = "/fulfillwatch/repair",
    seen: SeenReplayIds | None = None,
) -> Any:
    """A FastAPI ``APIRouter`` with ``POST path`` serving reprocess callbacks.

    ``seen`` defaults to an in-memory store of handled replay ids (one per router).
    """
    try:
        from fastapi import APIRouter, Request
        from fastapi.responses import JSONResponse
    except ImportError as exc:  # pragma: no cover - depends on the app's environment
        raise ImportError("repair_router needs FastAPI; use handle_repair_request with other frameworks") from exc
    remembered: SeenReplayIds = seen if seen is not None else InMemorySeenReplayIds()
    router = APIRouter()

    @router.post(path, include_in_schema=False)
    # (This module has no "from __future__ import annotations": FastAPI must see the real
    # Request class here, imported above only when the router is built.)
    async def fulfillwatch_repair(request: Request) -> JSONResponse:
        response = await handle_repair_request_async(
            dict(request.headers), await request.body(), repair, secrets, seen=remembered
        )
        return JSONResponse(response.body, status_code=response.status_code)

    return router
