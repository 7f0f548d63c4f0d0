"""Turning one fulfillment span into a :class:`Signal`, whatever wire format it came in.

The OTLP protobuf and JSON decoders (and readers of the Collector's ``otel_traces`` table)
extract the span's fields into plain Python values and call :func:`signal_from_span`; the rules
live here once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, NamedTuple

from fulfillwatch.instrumentation import vocabulary as v

from .identity import stored_effect
from .ingest_auth import DEFAULT_PROJECT
from .signals import RECEIPT, RESULT, SOURCE_OTLP, Signal, micros

#: Attribute keys stored in dedicated columns (everything else goes to ``attributes``).
_VOCABULARY_KEYS = frozenset(
    {
        v.STRIPE_EVENT_ID,
        v.STRIPE_EVENT_TYPE,
        v.STRIPE_LIVEMODE,
        v.STRIPE_ACCOUNT,
        v.STRIPE_CUSTOMER,
        v.STRIPE_AMOUNT,
        v.STRIPE_CURRENCY,
        v.STRIPE_EVENT_CREATED,
        v.FULFILLMENT_EFFECT,
        v.FULFILLMENT_OUTCOME,
        v.FULFILLMENT_ATTEMPT,
        v.FULFILLMENT_TIMEOUT_S,
        v.FULFILLMENT_DUE_AT,
        v.FULFILLMENT_REPLAY_ID,
        v.ERROR_TYPE,
        v.FULFILLMENT_ERROR_MESSAGE,
    }
)
_MAX_EXTRA_ATTRIBUTES = 64
_MAX_TEXT = 4096
_MAX_ID = 256
#: Bounds a span's values must respect to be stored: what the columns can hold and what can be
#: a real fulfillment. A value outside them rejects that span (with the reason), so that it can
#: never make the insert it shares with other senders' spans fail.
EARLIEST_US = 946_684_800_000_000  # 2000-01-01T00:00:00Z
MAX_FUTURE_US = 86_400_000_000  # one day of clock skew
MAX_TIMEOUT_S = 90 * 86_400.0
_INT64 = 2**63
_UINT32 = 2**32
#: OTLP Status.code value for ERROR.
STATUS_ERROR = 2
#: ``StatusCode`` of an error span in the Collector ClickHouse exporter's table (old and new spelling).
_OTEL_TRACES_ERROR_CODES = ("Error", "STATUS_CODE_ERROR")


class UnusableSpan(ValueError):
    """A fulfillment span that cannot become a signal (reported through ``partial_success``)."""


class SpanFields(NamedTuple):
    """The parts of a span the conversion needs, already decoded from the wire format."""

    name: str
    trace_id: str  # lowercase hex
    span_id: str  # lowercase hex
    end_time_ns: int
    status_code: int
    status_message: str
    attributes: Mapping[str, object]
    service: str = ""
    link_trace_id: str = ""
    link_span_id: str = ""


def _text(value: object, limit: int = _MAX_TEXT) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)[:limit]


def _integer(value: object, key: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise UnusableSpan(f"{key} must be a number, got a bool")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise UnusableSpan(f"{key} must be an integer, got {value!r}")


def _seconds(value: object, key: str) -> float | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    if not isinstance(value, (int, float, str)):
        raise UnusableSpan(f"{key} must be a number of seconds, got {value!r}")
    try:
        seconds = float(value)
    except ValueError:
        raise UnusableSpan(f"{key} must be a number of seconds, got {value!r}") from None
    if not 0 < seconds <= MAX_TIMEOUT_S:  # also false for NaN
        raise UnusableSpan(f"{key} must be a positive number of seconds up to {MAX_TIMEOUT_S:.0f}, got {value!r}")
    return seconds


def _boolean(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _due_at(attributes: Mapping[str, object], at: int, default_timeout_s: float) -> int:
    """The deadline in epoch microseconds: timeout_s after the receipt, or due_at, or the default."""
    timeout = attributes.get(v.FULFILLMENT_TIMEOUT_S)
    if type(timeout) is not int or not 0 < timeout <= MAX_TIMEOUT_S:
        timeout = _seconds(timeout, v.FULFILLMENT_TIMEOUT_S)
    if timeout is not None:
        return at + round(timeout * 1_000_000)
    due_text = attributes.get(v.FULFILLMENT_DUE_AT)
    if isinstance(due_text, str) and due_text:
        try:
            due = datetime.fromisoformat(due_text.replace("Z", "+00:00"))
            due_us = micros(due if due.tzinfo else due.replace(tzinfo=timezone.utc))
        except (ValueError, OverflowError):
            raise UnusableSpan(f"{v.FULFILLMENT_DUE_AT} is not an RFC 3339 time: {due_text!r}") from None
        if not EARLIEST_US <= due_us <= at + round(MAX_TIMEOUT_S * 1_000_000):
            raise UnusableSpan(f"{v.FULFILLMENT_DUE_AT} {due_text!r} is not within {MAX_TIMEOUT_S:.0f} s of the span")
        return due_us
    return at + round(default_timeout_s * 1_000_000)


def _outcome(fields: SpanFields) -> str:
    outcome = fields.attributes.get(v.FULFILLMENT_OUTCOME)
    if outcome is None or outcome == "":
        # Hand-written spans may only set the status: ERROR is a failure, anything else success.
        return v.OUTCOME_FAILURE if fields.status_code == STATUS_ERROR else v.OUTCOME_SUCCESS
    if outcome not in v.OUTCOMES:
        raise UnusableSpan(f"{v.FULFILLMENT_OUTCOME} must be one of {', '.join(v.OUTCOMES)}, got {outcome!r}")
    return str(outcome)


def _extras(attributes: Mapping[str, object]) -> dict[str, str]:
    extras: dict[str, str] = {}
    for key, value in attributes.items():
        if key not in _VOCABULARY_KEYS:
            extras[key] = _text(value, 1024)
            if len(extras) >= _MAX_EXTRA_ATTRIBUTES:
                break
    return extras


def signal_from_span(
    fields: SpanFields,
    *,
    default_timeout_s: float,
    source: str = SOURCE_OTLP,
    project: str = DEFAULT_PROJECT,
    now_us: int | None = None,
) -> Signal:
    """Convert a fulfillment span of ``project``; raises :class:`UnusableSpan` saying what is wrong.

    Every value is checked against what its column holds and what a real fulfillment can be
    (``now_us``, default the clock, bounds the end time). This runs for every span received,
    so values of the expected type take the direct path and only unusual ones go through the
    converting helpers.
    """
    attributes = fields.attributes
    get = attributes.get
    event_id = get(v.STRIPE_EVENT_ID)
    if type(event_id) is not str or not event_id or event_id != event_id.strip():
        if not isinstance(event_id, str) or not event_id.strip():
            raise UnusableSpan(f"{fields.name} span has no {v.STRIPE_EVENT_ID} attribute")
        event_id = event_id.strip()
    if len(event_id) > _MAX_ID:
        raise UnusableSpan(f"{v.STRIPE_EVENT_ID} is longer than {_MAX_ID} characters")
    if len(fields.trace_id) != 32 or len(fields.span_id) != 16:
        raise UnusableSpan("span has an invalid trace id or span id")
    if fields.end_time_ns <= 0:
        raise UnusableSpan("span has no end time")
    at = fields.end_time_ns // 1000
    latest = (now_us if now_us is not None else int(time.time() * 1_000_000)) + MAX_FUTURE_US
    if not EARLIEST_US <= at <= latest:
        raise UnusableSpan(f"span end time {fields.end_time_ns} ns is not between 2000-01-01 and one day from now")
    event_type = _text(get(v.STRIPE_EVENT_TYPE), _MAX_ID)
    effect = stored_effect(_text(get(v.FULFILLMENT_EFFECT), _MAX_ID), event_type)
    attempt = get(v.FULFILLMENT_ATTEMPT)
    if type(attempt) is not int:
        attempt = _integer(attempt, v.FULFILLMENT_ATTEMPT) or 0
    amount = get(v.STRIPE_AMOUNT)
    if amount is not None and type(amount) is not int:
        amount = _integer(amount, v.STRIPE_AMOUNT)
    if amount is not None and not -_INT64 <= amount < _INT64:
        raise UnusableSpan(f"{v.STRIPE_AMOUNT} {amount} does not fit a 64-bit integer")
    created = get(v.STRIPE_EVENT_CREATED)
    if type(created) is not int:
        created = _integer(created, v.STRIPE_EVENT_CREATED) or 0
    if not 0 <= created < _UINT32:
        raise UnusableSpan(f"{v.STRIPE_EVENT_CREATED} {created} is not a Unix time in seconds")
    livemode = get(v.STRIPE_LIVEMODE)
    if livemode is not None and type(livemode) is not bool:
        livemode = _boolean(livemode)
    is_receipt = fields.name == v.RECEIPT_SPAN
    outcome = error_type = error_message = ""
    if is_receipt:
        due_at = _due_at(attributes, at, default_timeout_s)
    else:
        due_at = 0
        outcome = _outcome(fields)
        if outcome == v.OUTCOME_FAILURE:
            error_type = _text(get(v.ERROR_TYPE), _MAX_ID) or "unknown"
            error_message = _text(get(v.FULFILLMENT_ERROR_MESSAGE) or fields.status_message)
    # Positional, in the column order of Signal (this is the hot path).
    return Signal(
        fields.trace_id + fields.span_id,
        RECEIPT if is_receipt else RESULT,
        event_id,
        at,
        effect,
        event_type,
        fields.service[:_MAX_ID],
        outcome,
        due_at,
        min(max(attempt, 0), 65535),
        error_type,
        error_message,
        _text(get(v.FULFILLMENT_REPLAY_ID), _MAX_ID),
        livemode,
        _text(get(v.STRIPE_ACCOUNT), _MAX_ID),
        _text(get(v.STRIPE_CUSTOMER), _MAX_ID),
        amount,
        _text(get(v.STRIPE_CURRENCY), 16),
        created,
        fields.trace_id,
        fields.span_id,
        fields.link_trace_id,
        fields.link_span_id,
        source,
        _extras(attributes) if len(attributes) else {},
        project,
    )


def span_fields_from_otel_traces_row(row: Sequence[Any]) -> SpanFields:
    """A row of the Collector ClickHouse exporter's ``otel_traces`` table, selected as
    ``(start ns, TraceId, SpanId, SpanName, ServiceName, SpanAttributes, Duration ns, StatusCode,
    StatusMessage, Links.TraceId, Links.SpanId)``: every attribute value is a string there,
    ``Timestamp`` is the start, and ``StatusCode`` is ``Error`` (``STATUS_CODE_ERROR`` before
    contrib v0.108)."""
    start_ns, trace_id, span_id, name, service, attributes, duration_ns, status, message, links, link_spans = row
    return SpanFields(
        name=name,
        trace_id=str(trace_id).lower(),
        span_id=str(span_id).lower(),
        end_time_ns=int(start_ns) + int(duration_ns),
        status_code=STATUS_ERROR if status in _OTEL_TRACES_ERROR_CODES else 0,
        status_message=message,
        attributes=dict(attributes),
        service=service,
        link_trace_id=str(links[0]).lower() if links else "",
        link_span_id=str(link_spans[0]).lower() if link_spans else "",
    )
