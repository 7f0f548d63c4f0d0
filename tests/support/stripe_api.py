"""Stripe's Events API for the tests: the stand-in of ``examples/stripe_standin.py`` (Stripe
itself cannot be reached from here), and Stripe-shaped events to fill it with."""

from __future__ import annotations

from examples.stripe_standin import STRIPE_TEST_KEY, StandInStripe, StandInStripeServer, stripe_event

__all__ = ["STRIPE_TEST_KEY", "StandInStripe", "StandInStripeServer", "stripe_event", "stripe_table"]


def stripe_table(url: str, extra: str = "", grace_s: float = 900) -> str:
    """A ``[stripe]`` table reading the stand-in at ``url`` (test mode, for the service ``shop``)."""
    return f"""
[stripe]
service = "shop"
mode = "test"
api_base = "{url}"
event_types = ["checkout.session.completed", "invoice.paid"]
grace_s = {grace_s}
{extra}
"""
