"""Stripe-shaped webhook deliveries built from the fixture events, signed like Stripe signs."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import httpx

EVENTS = Path(__file__).resolve().parents[2] / "examples" / "events"
#: The secret of Stripe's own SDK tests (and of the example shop's default configuration).
WEBHOOK_SECRET = "whsec_test_secret"


def event(name: str, event_id: str, *, customer: str | None = None, chaos: str | None = None) -> dict[str, Any]:
    """A fixture event (``examples/events/<name>.json``) with a new id, customer or failure switch."""
    made = copy.deepcopy(json.loads((EVENTS / f"{name}.json").read_text()))
    made["id"] = event_id
    made["created"] = int(time.time())
    obj = made["data"]["object"]
    if customer is not None:
        obj["customer"] = customer
    if chaos is not None:
        obj["metadata"] = {**(obj.get("metadata") or {}), "fw_chaos": chaos}
    return made


def stripe_signature(payload: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """``Stripe-Signature``: ``t=<unix>,v1=<hex HMAC-SHA256 of "t.payload" keyed by the secret>``."""
    moment = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{moment}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={moment},v1={digest}"


def deliver(url: str, stripe_event: dict[str, Any], client: httpx.Client | None = None) -> httpx.Response:
    """POST an event to a webhook endpoint the way Stripe does."""
    payload = json.dumps(stripe_event)
    headers = {"Content-Type": "application/json", "Stripe-Signature": stripe_signature(payload)}
    if client is not None:
        return client.post(url, content=payload, headers=headers)
    return httpx.post(url, content=payload, headers=headers, timeout=30)
