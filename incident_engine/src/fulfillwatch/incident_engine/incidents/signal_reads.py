"""Reads of stored signals: an event's receipts and results, each once, for the API."""

from __future__ import annotations

import json
from typing import Any

from clickhouse_connect.driver.client import Client

from fulfillwatch.collector_processor.identity import ExpectationIdentity
from fulfillwatch.collector_processor.signals import SIGNALS_TABLE
from fulfillwatch.incident_engine.incidents.records import SignalRecord, StripeEventRecord
from fulfillwatch.incident_engine.schema_declared import STRIPE_EVENTS_TABLE

_SIGNAL_COLUMNS = """signal, signal_id, project, stripe_event_id, effect, event_type, service, outcome, at,
    due_at, attempt, error_type, error_message, replay_id, livemode, account, customer, amount, currency,
    trace_id, span_id, receipt_trace_id, receipt_span_id, source, ingested_at"""


def _signal(row: dict[str, Any]) -> SignalRecord:
    return SignalRecord(
        signal=row["signal"],
        signal_id=row["signal_id"],
        identity=ExpectationIdentity(
            row["project"], row["stripe_event_id"], row["effect"], row["event_type"], row["service"]
        ),
        outcome=row["outcome"],
        at=row["at"],
        due_at=row["due_at"] if row["signal"] == "receipt" else None,
        attempt=int(row["attempt"]),
        error_type=row["error_type"],
        error_message=row["error_message"],
        replay_id=row["replay_id"],
        livemode=row["livemode"],
        account=row["account"],
        customer=row["customer"],
        amount=row["amount"],
        currency=row["currency"],
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        receipt_trace_id=row["receipt_trace_id"],
        receipt_span_id=row["receipt_span_id"],
        source=row["source"],
        ingested_at=row["ingested_at"],
    )


def signals_of(client: Client, stripe_event_id: str, identity: ExpectationIdentity | None = None) -> list[SignalRecord]:
    """The signals of an event (of one expectation, or all), each once, in time order."""
    condition = "stripe_event_id = {event:String}"
    params: dict[str, Any] = {"event": stripe_event_id}
    if identity is not None:
        condition += " AND effect = {effect:String} AND project = {project:String}"
        params["effect"] = identity.effect
        params["project"] = identity.project
    result = client.query(
        f"SELECT {_SIGNAL_COLUMNS} FROM {SIGNALS_TABLE} FINAL WHERE {condition} ORDER BY at, signal_id",
        parameters=params,
    )
    return [_signal(row) for row in result.named_results()]


def stored_event(client: Client, stripe_event_id: str) -> StripeEventRecord | None:
    """The stored Stripe event with this id (its latest sighting), or ``None``."""
    rows = client.query(
        f"""SELECT stripe_event_id, any(event_type), any(account), min(created), max(livemode), any(object_id),
                   any(customer), any(amount), any(currency), max(delivery_failed), min(seen_at), any(raw)
            FROM {STRIPE_EVENTS_TABLE} WHERE stripe_event_id = {{id:String}} GROUP BY stripe_event_id""",
        parameters={"id": stripe_event_id},
    ).result_rows
    if not rows:
        return None
    r = rows[0]
    return StripeEventRecord(
        r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6], r[7], r[8], bool(r[9]), r[10], json.loads(r[11])
    )
