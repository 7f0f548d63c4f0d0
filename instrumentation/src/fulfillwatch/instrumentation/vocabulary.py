"""The one vocabulary of Fulfillwatch: span names, attribute keys and enumerated values.

Every component (the instrumentation, the OTLP receiver, the engine, the collector
configuration tests) imports its names from here, so that a key spelled once can never drift.
This module is standard-library only on purpose: the server packages import it without pulling
OpenTelemetry, and customers can read it as the wire contract.

The contract, for apps in other languages that emit the spans themselves:

* a *receipt* span named :data:`RECEIPT_SPAN` is ended when the app has durably accepted a
  Stripe event (the webhook answered 200 and the job is queued);
* a *result* span named :data:`RESULT_SPAN` is ended when the business effect was applied
  (``success``), failed (``failure``) or was found already applied (``skipped``).

Both carry :data:`STRIPE_EVENT_ID`; the expectation they belong to is the pair
``(stripe.event.id, fulfillment.effect)``, the effect defaulting to the event type.
"""

from __future__ import annotations

from typing import Final

#: Name of the span ended when the app durably accepted a Stripe event.
RECEIPT_SPAN: Final = "fulfillment.receipt"
#: Name of the span ended when the business effect of an event was applied or failed.
RESULT_SPAN: Final = "fulfillment.result"
#: Both fulfillment span names; any other span is not Fulfillwatch's concern.
FULFILLMENT_SPANS: Final = frozenset({RECEIPT_SPAN, RESULT_SPAN})

# --- Stripe event identity --------------------------------------------------------------------
#: The Stripe event id (``evt_...``); required on both spans.
STRIPE_EVENT_ID: Final = "stripe.event.id"
#: The Stripe event type (``invoice.paid``); required on receipts, optional on results.
STRIPE_EVENT_TYPE: Final = "stripe.event.type"
#: ``True`` for live-mode events.
STRIPE_LIVEMODE: Final = "stripe.livemode"
#: The connected account (``acct_...``) for Connect events, when present.
STRIPE_ACCOUNT: Final = "stripe.account"
#: Key fields of the event's object, shown to the on-call engineer.
STRIPE_CUSTOMER: Final = "stripe.customer"
STRIPE_AMOUNT: Final = "stripe.amount"
STRIPE_CURRENCY: Final = "stripe.currency"
#: The Stripe event's ``created`` time (Unix seconds).
STRIPE_EVENT_CREATED: Final = "stripe.event.created"

# --- Fulfillment ------------------------------------------------------------------------------
#: The business effect (``grant_credits``); defaults to the event type.
FULFILLMENT_EFFECT: Final = "fulfillment.effect"
#: Result outcome: one of :data:`OUTCOMES`.
FULFILLMENT_OUTCOME: Final = "fulfillment.outcome"
#: Attempt number of this result (1 for the first run, 2 for the first retry...).
FULFILLMENT_ATTEMPT: Final = "fulfillment.attempt"
#: Seconds after the receipt by which a success result is expected.
FULFILLMENT_TIMEOUT_S: Final = "fulfillment.timeout_s"
#: The same deadline as an RFC 3339 UTC timestamp, for people reading traces.
FULFILLMENT_DUE_AT: Final = "fulfillment.due_at"
#: Replay id (the ``webhook-id`` of a reprocess callback) when the result comes from a repair.
FULFILLMENT_REPLAY_ID: Final = "fulfillment.replay_id"
#: Error type of a failed result (OpenTelemetry semantic convention ``error.type``).
ERROR_TYPE: Final = "error.type"
#: Error message of a failed result (also the span status description).
FULFILLMENT_ERROR_MESSAGE: Final = "fulfillment.error.message"

# --- Values -----------------------------------------------------------------------------------
OUTCOME_SUCCESS: Final = "success"
OUTCOME_FAILURE: Final = "failure"
OUTCOME_SKIPPED: Final = "skipped"
#: Every valid value of :data:`FULFILLMENT_OUTCOME`.
OUTCOMES: Final = (OUTCOME_SUCCESS, OUTCOME_FAILURE, OUTCOME_SKIPPED)

#: Event types tracked unless the app configures others.
DEFAULT_TRACKED_EVENT_TYPES: Final = frozenset({"checkout.session.completed", "invoice.paid"})
#: Default seconds between receipt and the expected success result (30 minutes).
DEFAULT_TIMEOUT_S: Final = 30 * 60

# --- Carrier keys (job payloads) --------------------------------------------------------------
#: Keys of the dict returned by ``ReceiptHandle.carrier()``; ``traceparent`` is W3C's own key.
CARRIER_EVENT_ID: Final = "fulfillwatch-event-id"
CARRIER_EVENT_TYPE: Final = "fulfillwatch-event-type"
CARRIER_EFFECT: Final = "fulfillwatch-effect"

# --- Environment variables (read by ``init()`` and the instrumentor) --------------------------
ENV_TRACKED_EVENT_TYPES: Final = "FULFILLWATCH_TRACKED_EVENT_TYPES"
ENV_DEFAULT_TIMEOUT: Final = "FULFILLWATCH_DEFAULT_TIMEOUT"
ENV_TIMEOUTS: Final = "FULFILLWATCH_TIMEOUTS"
#: The ingest key ``init()``'s own OTLP exporter sends (``Authorization: Bearer <key>``).
ENV_INGEST_KEY: Final = "FULFILLWATCH_INGEST_KEY"
