"""Stripe-shaped webhook traffic for the shop: fixture events, signed the way Stripe signs.

``python -m examples.stripe_shop.traffic --url http://127.0.0.1:8100/stripe/webhook`` sends a
realistic mix: most events are fulfilled; some hit a bug in the job (``result_failed``,
repairable by a reprocess once "fixed"), some belong to customers whose tenant row is created
only a little later (``result_failed``, repairable after onboarding), some are slow beyond
their deadline (``result_missing``, then resolved by the late success), some fail once and are
retried by Celery (no incident), and a few never reach the shop's records: their signature is
wrong (a secret rotated on one side) or the handler drops them — ``not_received`` once Stripe's
record is reconciled (``--stripe-standin``).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import hmac
import json
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from . import db
from .config import CONFIG

EVENTS = Path(__file__).resolve().parents[1] / "events"
FIXTURES = ("checkout.session.completed", "invoice.paid", "customer.subscription.updated")
CUSTOMER = "cus_QXg1o8vcGmoR32"  # the fixtures' customer
#: (weight, what happens) of the demo mix.
MIX = (
    (64, "healthy"),
    (8, "bug"),
    (7, "late_tenant"),
    (5, "slow"),
    (9, "transient"),
    # Deliveries the app never records (``not_received``, when Stripe's record is reconciled):
    (3, "bad_signature"),  # the endpoint rejects the signature (a secret rotated on one side)
    (3, "dropped"),  # the handler answers 200 but loses the event before accepting it
)
#: What the shop is sent instead of its signing secret for ``bad_signature`` deliveries.
_ROTATED_SECRET = "whsec_rotated_on_one_side_only"  # noqa: S105 - deliberately not the shop's secret


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


def stripe_signature(payload: str, secret: str, timestamp: int | None = None) -> str:
    """``Stripe-Signature``: ``t=<unix>,v1=<hex HMAC-SHA256 of "t.payload" keyed by the secret>``."""
    moment = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{moment}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={moment},v1={digest}"


def deliver(url: str, stripe_event: dict[str, Any], secret: str, client: httpx.Client | None = None) -> httpx.Response:
    """POST an event to a webhook endpoint the way Stripe does."""
    payload = json.dumps(stripe_event)
    headers = {"Content-Type": "application/json", "Stripe-Signature": stripe_signature(payload, secret)}
    if client is not None:
        return client.post(url, content=payload, headers=headers)
    return httpx.post(url, content=payload, headers=headers, timeout=30)


def run(
    url: str,
    rate: float,
    duration: float,
    onboarding_delay: float,
    seed: int | None,
    stop: threading.Event,
    stripe_standin: str | None = None,
) -> int:
    """Send the demo mix until ``duration`` (0: until ``stop``); returns events sent. With
    ``stripe_standin`` every event is also put in Stripe's record (the stand-in's Events API),
    the undelivered ones marked as such."""
    rng = random.Random(seed)
    weights, kinds = zip(*MIX, strict=True)
    db.ensure_schema(CONFIG.db_path, CONFIG.inbox_path)
    db.add_tenant(CONFIG.db_path, CUSTOMER)
    started = time.monotonic()
    sent = 0
    with httpx.Client(timeout=30) as client:
        while not stop.is_set() and (not duration or time.monotonic() - started < duration):
            # Every kind once first, so that each kind of incident shows early; then the mix.
            kind = kinds[sent] if sent < len(kinds) else rng.choices(kinds, weights)[0]
            event_id = f"evt_demo{uuid.uuid4().hex[:16]}"
            customer, chaos = None, None
            if kind == "bug":
                chaos = "raise"
            elif kind == "slow":
                chaos = "slow:28"
            elif kind == "transient":
                chaos = "transient"
            elif kind == "dropped":
                chaos = "drop"
            elif kind == "late_tenant":
                customer = f"cus_demo{uuid.uuid4().hex[:10]}"
                timer = threading.Timer(onboarding_delay, db.add_tenant, (CONFIG.db_path, customer))
                timer.daemon = True
                timer.start()  # onboarding catches up a little later
            made = event(rng.choice(FIXTURES), event_id, customer=customer, chaos=chaos)
            secret = _ROTATED_SECRET if kind == "bad_signature" else CONFIG.stripe_webhook_secret
            response = deliver(url, made, secret, client)
            if kind != "bad_signature":
                response.raise_for_status()
            if stripe_standin is not None:
                record = {"event": made, "undelivered": response.status_code >= 300}
                client.post(f"{stripe_standin}/_standin/events", json=record).raise_for_status()
            sent += 1
            stop.wait(rng.expovariate(rate))
    return sent


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", required=True, help="the shop's webhook URL")
    parser.add_argument("--rate", type=float, default=1.5, help="events per second")
    parser.add_argument("--duration", type=float, default=0, help="seconds (default: until Ctrl-C)")
    parser.add_argument("--onboarding-delay", type=float, default=25, help="seconds before late tenants exist")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--stripe-standin", help="also record every event at this stand-in for Stripe's Events API")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        sent = run(
            args.url,
            args.rate,
            args.duration,
            args.onboarding_delay,
            args.seed,
            threading.Event(),
            args.stripe_standin,
        )
        print(f"sent {sent}")


if __name__ == "__main__":
    main()
