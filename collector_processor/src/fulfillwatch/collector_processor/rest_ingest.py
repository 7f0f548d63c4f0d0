"""REST ingest for apps not on OpenTelemetry: ``POST /v1/receipt`` and ``POST /v1/result``.

Each request writes the same ``fw_signals`` row a span would, so detection, incidents and
timelines are the same whichever way a signal came. Authentication is per project:
``Authorization: Bearer <api key>``, the server knowing only the key's SHA-256. Every request
needs an ``Idempotency-Key`` header: the signal id is derived from it, a retry with the same key
and body is answered ``200 duplicate`` without a second row, and the same key with another body
is refused (409).

(No ``from __future__ import annotations`` here: FastAPI must resolve the route annotations,
which refer to a dependency defined inside :func:`build_rest_router`.)
"""

import asyncio
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from fulfillwatch.instrumentation import vocabulary as v

from .counters import IngestCounters
from .signals import RECEIPT, REST_REQUESTS_TABLE, RESULT, SIGNALS_TABLE, SOURCE_REST, Signal, effect_key, micros
from .store import Store, StoreUnavailable
from .writer import SignalWriter

_bearer = HTTPBearer(auto_error=False)
_ID = Field(min_length=1, max_length=256)
_OUTCOMES = {"success": v.OUTCOME_SUCCESS, "failed": v.OUTCOME_FAILURE, "skipped": v.OUTCOME_SKIPPED}


@dataclass(frozen=True)
class IngestProjectKey:
    """A project allowed to post signals, and the service name they are stored under."""

    project: str
    service: str


def hash_api_key(key: str) -> str:
    """The SHA-256 hex digest stored in the configuration instead of the key."""
    return hashlib.sha256(key.encode()).hexdigest()


class ReceiptIn(BaseModel):
    """The app durably accepted a Stripe event."""

    stripe_event_id: str = _ID
    event_type: str = _ID
    effect: str | None = Field(None, max_length=256, description="Default: the event type")
    timeout_minutes: float | None = Field(None, gt=0, le=60 * 24 * 90, description="Default: the server's")
    livemode: bool | None = None
    account: str | None = Field(None, max_length=256)
    customer: str | None = Field(None, max_length=256)
    amount: int | None = None
    currency: str | None = Field(None, max_length=16)


class ResultIn(BaseModel):
    """The business effect of a Stripe event was applied, failed, or was already done."""

    stripe_event_id: str = _ID
    status: Literal["success", "failed", "skipped"]
    event_type: str | None = Field(None, max_length=256)
    effect: str | None = Field(None, max_length=256)
    error_code: str | None = Field(None, max_length=256)
    error_message: str | None = Field(None, max_length=4096)
    replay_id: str | None = Field(None, max_length=256)
    attempt: int | None = Field(None, ge=0, le=65535)


class Stored(BaseModel):
    """What happened to the signal."""

    status: Literal["stored", "duplicate"]
    signal_id: str


def build_rest_router(
    writer: SignalWriter,
    store: Store,
    counters: IngestCounters,
    keys: Mapping[str, IngestProjectKey],
    default_timeout_s: float,
) -> APIRouter:
    """The two routes; ``keys`` maps SHA-256 digests of API keys to their project."""
    router = APIRouter(prefix="/v1", tags=["REST ingest"])
    lock = asyncio.Lock()  # check-then-insert of one idempotency key at a time

    def project(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> IngestProjectKey:
        if credentials is None:
            raise HTTPException(
                401, "missing API key: send 'Authorization: Bearer <key>'", {"WWW-Authenticate": "Bearer"}
            )
        found = keys.get(hash_api_key(credentials.credentials))
        if found is None:
            raise HTTPException(401, "unknown API key", {"WWW-Authenticate": "Bearer"})
        return found

    async def store_once(signal: Signal, fingerprint: str, response: Response) -> Stored:
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
                await writer.write([signal])
                await asyncio.to_thread(_remember_request, store, signal, fingerprint)
            except StoreUnavailable as exc:
                raise HTTPException(503, f"not stored, retry later: {exc}", {"Retry-After": "5"}) from None
        counters.add(signals_stored=1)
        return Stored(status="stored", signal_id=signal.signal_id)

    @router.post("/receipt", response_model=Stored, status_code=201, summary="Record a receipt")
    async def receipt(
        body: ReceiptIn,
        response: Response,
        caller: Annotated[IngestProjectKey, Depends(project)],
        idempotency_key: Annotated[str, Header(min_length=1, max_length=255)],
    ) -> Stored:
        """The app durably accepted the event (answered Stripe 200 and queued the work)."""
        now = micros(datetime.now(timezone.utc))
        timeout_s = body.timeout_minutes * 60 if body.timeout_minutes is not None else default_timeout_s
        signal = Signal(
            _signal_id(caller, idempotency_key),
            RECEIPT,
            body.stripe_event_id,
            now,
            effect=effect_key(body.effect or "", body.event_type),
            event_type=body.event_type,
            service=caller.service,
            due_at=now + round(timeout_s * 1_000_000),
            livemode=body.livemode,
            account=body.account or "",
            customer=body.customer or "",
            amount=body.amount,
            currency=body.currency or "",
            source=SOURCE_REST,
        )
        return await store_once(signal, _fingerprint(body), response)

    @router.post("/result", response_model=Stored, status_code=201, summary="Record a result")
    async def result(
        body: ResultIn,
        response: Response,
        caller: Annotated[IngestProjectKey, Depends(project)],
        idempotency_key: Annotated[str, Header(min_length=1, max_length=255)],
    ) -> Stored:
        """The effect was applied (``success``), failed (``failed``), or found done (``skipped``)."""
        failed = body.status == "failed"
        event_type = body.event_type or ""
        signal = Signal(
            _signal_id(caller, idempotency_key),
            RESULT,
            body.stripe_event_id,
            micros(datetime.now(timezone.utc)),
            effect=effect_key(body.effect or "", event_type),
            event_type=event_type,
            service=caller.service,
            outcome=_OUTCOMES[body.status],
            attempt=body.attempt or 0,
            replay_id=body.replay_id or "",
            error_type=(body.error_code or "unknown") if failed else "",
            error_message=(body.error_message or "") if failed else "",
            source=SOURCE_REST,
        )
        return await store_once(signal, _fingerprint(body), response)

    return router


def _signal_id(caller: IngestProjectKey, idempotency_key: str) -> str:
    return "rest_" + hashlib.sha256(f"{caller.project}\x1f{idempotency_key}".encode()).hexdigest()[:40]


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
    store.client("rest").insert(
        REST_REQUESTS_TABLE,
        [[signal.signal_id, fingerprint, signal.stripe_event_id, datetime.now(timezone.utc)]],
        column_names=["signal_id", "fingerprint", "stripe_event_id", "received_at"],
    )
