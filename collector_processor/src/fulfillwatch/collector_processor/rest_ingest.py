"""REST ingest for apps not on OpenTelemetry: ``POST /v1/receipt`` and ``POST /v1/result``.

Each request writes the same ``fw_signals`` row a span would, so detection, incidents and
timelines are the same whichever way a signal came. The caller is an ingest key
(``Authorization: Bearer <key>``, checked by :mod:`.ingest_gate` before the body is read), and
the signal's ``service`` must belong to a project granted to that key (403 otherwise; it may be
left out when the key writes for exactly one service). Every request needs an
``Idempotency-Key`` header: the signal id is derived from it and the project, a retry with the
same key and body is answered ``200 duplicate`` without a second row, and the same key with
another body is refused (409).

(No ``from __future__ import annotations`` here: FastAPI must resolve the route annotations.)
"""

import asyncio
import hashlib
import json
from datetime import datetime, timezone
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response
from fastapi.security import HTTPBearer
from pydantic import AfterValidator, BaseModel, Field

from fulfillwatch.instrumentation import vocabulary as v

from .counters import IngestCounters
from .identity import stored_effect
from .ingest_auth import IngestAccess, IngestKey, hash_api_key
from .ingest_gate import STATE_KEY
from .signals import (
    RECEIPT,
    REST_REQUESTS_TABLE,
    RESULT,
    SIGNALS_TABLE,
    SOURCE_REST,
    Signal,
    SignalBatch,
    micros,
)
from .span_signals import MAX_TIMEOUT_S
from .store import Store, StoreUnavailable, insert_rows
from .writer import RejectedBatch, SignalWriter

__all__ = ["ReceiptIn", "ResultIn", "Stored", "build_rest_router", "hash_api_key"]

_OUTCOMES = {"success": v.OUTCOME_SUCCESS, "failed": v.OUTCOME_FAILURE, "skipped": v.OUTCOME_SKIPPED}


def _encodable(text: str) -> str:
    # JSON escapes can spell lone surrogates, which no column can store.
    try:
        text.encode()
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (it contains a lone surrogate)") from None
    return text


Text = Annotated[str, AfterValidator(_encodable)]
_ID = Field(min_length=1, max_length=256)
_INT64 = 2**63


class ReceiptIn(BaseModel):
    """The app durably accepted a Stripe event."""

    stripe_event_id: Text = _ID
    event_type: Text = _ID
    service: Text | None = Field(
        None, min_length=1, max_length=256, description="service.name; default: the key's only service"
    )
    effect: Text | None = Field(None, max_length=256, description="Default: the event type")
    timeout_minutes: float | None = Field(
        None, gt=0, le=MAX_TIMEOUT_S / 60, allow_inf_nan=False, description="Default: the server's"
    )
    livemode: bool | None = None
    account: Text | None = Field(None, max_length=256)
    customer: Text | None = Field(None, max_length=256)
    amount: int | None = Field(None, ge=-_INT64, lt=_INT64, description="In the currency's smallest unit")
    currency: Text | None = Field(None, max_length=16)


class ResultIn(BaseModel):
    """The business effect of a Stripe event was applied, failed, or was already done."""

    stripe_event_id: Text = _ID
    status: Literal["success", "failed", "skipped"]
    service: Text | None = Field(
        None, min_length=1, max_length=256, description="service.name; default: the key's only service"
    )
    event_type: Text | None = Field(None, max_length=256)
    effect: Text | None = Field(None, max_length=256)
    error_code: Text | None = Field(None, max_length=256)
    error_message: Text | None = Field(None, max_length=4096)
    replay_id: Text | None = Field(None, max_length=256)
    attempt: int | None = Field(None, ge=0, le=65535)


class Stored(BaseModel):
    """What happened to the signal."""

    status: Literal["stored", "duplicate"]
    signal_id: str


def build_rest_router(
    writer: SignalWriter,
    store: Store,
    counters: IngestCounters,
    access: IngestAccess,
    default_timeout_s: float,
) -> APIRouter:
    """The two routes; callers are authenticated by the gate, their grants are in ``access``."""
    # The bearer scheme is declared for the OpenAPI document; the gate does the checking.
    router = APIRouter(prefix="/v1", tags=["REST ingest"], dependencies=[Depends(HTTPBearer(auto_error=False))])
    lock = asyncio.Lock()  # check-then-insert of one idempotency key at a time

    def caller_of(request: Request, service: str | None) -> tuple[str, str]:
        """``(service, project)`` of a signal, or 403/422 saying why not."""
        key: IngestKey | None = request.scope.get("state", {}).get(STATE_KEY)
        if service is None:
            services = access.services_of(key)
            if len(services) != 1:
                raise HTTPException(
                    422,
                    "service is required: name the service.name this signal belongs to"
                    + (f" (one of {', '.join(services[:10])})" if services else ""),
                )
            service = services[0]
        project, refusal = access.project_for(key, service)
        if refusal:
            raise HTTPException(403, refusal)
        return service, project

    async def store_once(signal: Signal, fingerprint: str, response: Response) -> Stored:
        try:
            batch = SignalBatch.of([signal])
        except (ValueError, OverflowError, UnicodeError) as exc:
            raise HTTPException(422, f"the signal cannot be stored: {exc}") from None
        async with lock:
            try:
                seen = await asyncio.to_thread(_seen_request, store, signal)
                if seen is not None and seen != fingerprint:
                    raise HTTPException(409, "this Idempotency-Key was used for a different request")
                if seen is not None or await asyncio.to_thread(_signal_exists, store, signal):
                    response.status_code = 200
                    return Stored(status="duplicate", signal_id=signal.signal_id)
                # The signal first, then the key: a crash in between makes the retry find the
                # signal (duplicate), never a key without its signal (a lost signal).
                await writer.write(batch)
                await asyncio.to_thread(_remember_request, store, signal, fingerprint)
            except StoreUnavailable as exc:
                raise HTTPException(503, f"not stored, retry later: {exc}", {"Retry-After": "5"}) from None
            except RejectedBatch as exc:
                raise HTTPException(400, f"not stored: {exc}") from None
        counters.add(signals_stored=1)
        return Stored(status="stored", signal_id=signal.signal_id)

    @router.post(
        "/receipt",
        response_model=Stored,
        status_code=201,
        summary="Record a receipt",
        responses={403: {"description": "The service is not in a project of this ingest key"}},
    )
    async def receipt(
        body: ReceiptIn,
        request: Request,
        response: Response,
        idempotency_key: Annotated[str, Header(min_length=1, max_length=255)],
    ) -> Stored:
        """The app durably accepted the event (answered Stripe 200 and queued the work)."""
        service, project = caller_of(request, body.service)
        now = micros(datetime.now(timezone.utc))
        timeout_s = body.timeout_minutes * 60 if body.timeout_minutes is not None else default_timeout_s
        signal = Signal(
            _signal_id(project, idempotency_key),
            RECEIPT,
            body.stripe_event_id,
            now,
            effect=stored_effect(body.effect, body.event_type),
            event_type=body.event_type,
            service=service,
            due_at=now + round(timeout_s * 1_000_000),
            livemode=body.livemode,
            account=body.account or "",
            customer=body.customer or "",
            amount=body.amount,
            currency=body.currency or "",
            source=SOURCE_REST,
            project=project,
        )
        return await store_once(signal, _fingerprint(body), response)

    @router.post(
        "/result",
        response_model=Stored,
        status_code=201,
        summary="Record a result",
        responses={403: {"description": "The service is not in a project of this ingest key"}},
    )
    async def result(
        body: ResultIn,
        request: Request,
        response: Response,
        idempotency_key: Annotated[str, Header(min_length=1, max_length=255)],
    ) -> Stored:
        """The effect was applied (``success``), failed (``failed``), or found done (``skipped``)."""
        service, project = caller_of(request, body.service)
        failed = body.status == "failed"
        event_type = body.event_type or ""
        signal = Signal(
            _signal_id(project, idempotency_key),
            RESULT,
            body.stripe_event_id,
            micros(datetime.now(timezone.utc)),
            effect=stored_effect(body.effect, event_type),
            event_type=event_type,
            service=service,
            outcome=_OUTCOMES[body.status],
            attempt=body.attempt or 0,
            replay_id=body.replay_id or "",
            error_type=(body.error_code or "unknown") if failed else "",
            error_message=(body.error_message or "") if failed else "",
            source=SOURCE_REST,
            project=project,
        )
        return await store_once(signal, _fingerprint(body), response)

    return router


def _signal_id(project: str, idempotency_key: str) -> str:
    return "rest_" + hashlib.sha256(f"{project}\x1f{idempotency_key}".encode()).hexdigest()[:40]


def _fingerprint(body: BaseModel) -> str:
    return hashlib.sha256(json.dumps(body.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def _seen_request(store: Store, signal: Signal) -> str | None:
    """The fingerprint of the request that already used this idempotency key, if any."""
    rows = (
        store.client("rest")
        .query(
            f"SELECT fingerprint FROM {REST_REQUESTS_TABLE} FINAL WHERE signal_id = {{id:String}}",
            parameters={"id": signal.signal_id},
        )
        .result_rows
    )
    return str(rows[0][0]) if rows else None


def _signal_exists(store: Store, signal: Signal) -> bool:
    rows = (
        store.client("rest")
        .query(
            f"""SELECT 1 FROM {SIGNALS_TABLE}
            WHERE stripe_event_id = {{event:String}} AND effect = {{effect:String}} AND signal = {{signal:String}}
              AND signal_id = {{id:String}}
            LIMIT 1""",
            parameters={
                "event": signal.stripe_event_id,
                "effect": signal.effect,
                "signal": signal.signal,
                "id": signal.signal_id,
            },
        )
        .result_rows
    )
    return bool(rows)


def _remember_request(store: Store, signal: Signal, fingerprint: str) -> None:
    insert_rows(
        store.client("rest"),
        REST_REQUESTS_TABLE,
        [[signal.signal_id, fingerprint, signal.stripe_event_id, datetime.now(timezone.utc)]],
        ["signal_id", "fingerprint", "stripe_event_id", "received_at"],
    )
