"""Stripe-shaped webhook deliveries for the tests (the example shop's traffic helpers)."""

from __future__ import annotations

from typing import Any

import httpx

from examples.stripe_shop.traffic import EVENTS, event, stripe_signature
from examples.stripe_shop.traffic import deliver as _deliver

__all__ = ["EVENTS", "WEBHOOK_SECRET", "deliver", "event", "stripe_signature"]

#: The secret of Stripe's own SDK tests (and of the example shop's default configuration).
WEBHOOK_SECRET = "whsec_test_secret"


def deliver(url: str, stripe_event: dict[str, Any], client: httpx.Client | None = None) -> httpx.Response:
    """POST an event to a webhook endpoint the way Stripe does, signed with WEBHOOK_SECRET."""
    return _deliver(url, stripe_event, WEBHOOK_SECRET, client)
