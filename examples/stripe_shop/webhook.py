"""The shop's web app: the Stripe webhook endpoint and the Fulfillwatch repair endpoint.

``uvicorn examples.stripe_shop.webhook:app``. The webhook verifies ``Stripe-Signature`` with the
official ``stripe`` SDK, keeps the event in the inbox, queues the effect on Celery and answers
200 only once the broker accepted the job (if it cannot, 500: Stripe delivers again). The
repair endpoint (``POST /fulfillwatch/repair``) re-applies an effect from the inbox when
Fulfillwatch sends a signed reprocess callback.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import stripe
from fastapi import FastAPI, Header, HTTPException, Request

from fulfillwatch.instrumentation.repair import RepairRequest, repair_router

from . import db, effects, tasks
from .config import CONFIG

app = FastAPI(title="Example Stripe shop")


@app.post("/stripe/webhook")
async def stripe_webhook(request: Request, stripe_signature: Annotated[str, Header()]) -> dict[str, Any]:
    """Receive a Stripe event."""
    payload = (await request.body()).decode("utf-8")
    try:
        event = stripe.Webhook.construct_event(payload, stripe_signature, CONFIG.stripe_webhook_secret)
    except (ValueError, stripe.SignatureVerificationError) as exc:
        raise HTTPException(400, f"invalid webhook: {exc}") from None
    data = json.loads(payload)  # the event as Stripe sent it (JSON-safe for the queue)
    if event.type != data["type"]:
        raise HTTPException(400, "inconsistent event")
    if data["type"] not in effects.EFFECTS:
        return {"received": True, "handled": False}
    if (data["data"]["object"].get("metadata") or {}).get("fw_chaos") == "drop":
        return {"received": True, "handled": True}  # BUG (demo): answered 200, never accepted
    db.store_event(CONFIG.inbox_path, data)
    tasks.enqueue(data)  # the receipt span is recorded when the broker accepts it
    return {"received": True, "handled": True}


def repair(request: RepairRequest) -> None:
    """Re-apply an effect (Fulfillwatch records the outcome as a result with the replay id). For
    an event the shop never received, Fulfillwatch sends it as Stripe's API returned it: keep it
    in the inbox and apply the effect its type needs, as the webhook's job would have."""
    if request.not_received and request.stripe_event is not None:
        event = dict(request.stripe_event)
        db.store_event(CONFIG.inbox_path, event)
        effects.apply(effects.EFFECTS[event["type"]], event, already_done=lambda: None, repairing=True)
        return
    event = db.load_event(CONFIG.inbox_path, request.stripe_event_id)
    if event is None:
        raise LookupError(f"event {request.stripe_event_id} is not in the inbox")
    effects.apply(request.effect, event, already_done=lambda: None, repairing=True)


app.include_router(repair_router(repair, secrets=list(CONFIG.repair_secrets)))
