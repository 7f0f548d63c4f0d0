"""Turning one fulfillment span into a :class:`Signal`, whatever wire format it came in.

The OTLP protobuf and JSON decoders (and readers of the Collector's ``otel_traces`` table)
extract the span's fields into plain Python values and call :func:`signal_from_span`; the rules
live here once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from fulfillwatch.instrumentation import vocabulary as v

from .signals import RECEIPT, RESULT, SOURCE_OTLP, Signal

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
#: OTLP Status.code value for ERROR.
STATUS_ERROR = 2


class UnusableSpan(ValueError):
    """A fulfillment span that cannot become a signal (reported through ``partial_success``)."""


@dataclass(frozen=True)
class SpanFields:
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
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UnusableSpan(f"{key} must be a number of seconds, got {value!r}") from None
    if not seconds > 0:
        raise UnusableSpan(f"{key} must be positive, got {value!r}")
    return seconds


def _boolean(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _due_at(attributes: Mapping[str, object], at: datetime, default_timeout_s: float) -> datetime:
    timeout = _seconds(attributes.get(v.FULFILLMENT_TIMEOUT_S), v.FULFILLMENT_TIMEOUT_S)
    if timeout is not None:
        return at + timedelta(seconds=timeout)
    due_text = attributes.get(v.FULFILLMENT_DUE_AT)
    if isinstance(due_text, str) and due_text:
        try:
            due = datetime.fromisoformat(due_text.replace("Z", "+00:00"))
        except ValueError:
            raise UnusableSpan(f"{v.FULFILLMENT_DUE_AT} is not an RFC 3339 time: {due_text!r}") from None
        return due if due.tzinfo else due.replace(tzinfo=timezone.utc)
    return at + timedelta(seconds=default_timeout_s)


def _outcome(fields: SpanFields) -> str:
    outcome = fields.attributes.get(v.FULFILLMENT_OUTCOME)
    if outcome is None or outcome == "":
        # Hand-written spans may only set the status: ERROR is a failure, anything else success.
        return v.OUTCOME_FAILURE if fields.status_code == STATUS_ERROR else v.OUTCOME_SUCCESS
    if outcome not in v.OUTCOMES:
        raise UnusableSpan(f"{v.FULFILLMENT_OUTCOME} must be one of {', '.join(v.OUTCOMES)}, got {outcome!r}")
    return str(outcome)


def signal_from_span(fields: SpanFields, *, default_timeout_s: float, source: str = SOURCE_OTLP) -> Signal:
    """Convert a fulfillment span; raises :class:`UnusableSpan` saying what is wrong."""
    attributes = fields.attributes
    event_id = attributes.get(v.STRIPE_EVENT_ID)
    if not isinstance(event_id, str) or not event_id.strip():
        raise UnusableSpan(f"{fields.name} span has no {v.STRIPE_EVENT_ID} attribute")
    if len(event_id) > _MAX_ID:
        raise UnusableSpan(f"{v.STRIPE_EVENT_ID} is longer than {_MAX_ID} characters")
    if len(fields.trace_id) != 32 or len(fields.span_id) != 16:
        raise UnusableSpan("span has an invalid trace id or span id")
    if fields.end_time_ns <= 0:
        raise UnusableSpan("span has no end time")
    at = datetime.fromtimestamp(fields.end_time_ns / 1e9, tz=timezone.utc)
    event_type = _text(attributes.get(v.STRIPE_EVENT_TYPE), _MAX_ID)
    effect = _text(attributes.get(v.FULFILLMENT_EFFECT), _MAX_ID)
    if effect == event_type:
        effect = ""  # the event's own fulfillment: same expectation as an unnamed effect
    is_receipt = fields.name == v.RECEIPT_SPAN
    signal = Signal(
        signal_id=fields.trace_id + fields.span_id,
        signal=RECEIPT if is_receipt else RESULT,
        stripe_event_id=event_id.strip(),
        at=at,
        effect=effect,
        event_type=event_type,
        service=fields.service[:_MAX_ID],
        attempt=min(max(_integer(attributes.get(v.FULFILLMENT_ATTEMPT), v.FULFILLMENT_ATTEMPT) or 0, 0), 65535),
        replay_id=_text(attributes.get(v.FULFILLMENT_REPLAY_ID), _MAX_ID),
        livemode=_boolean(attributes.get(v.STRIPE_LIVEMODE)),
        account=_text(attributes.get(v.STRIPE_ACCOUNT), _MAX_ID),
        customer=_text(attributes.get(v.STRIPE_CUSTOMER), _MAX_ID),
        amount=_integer(attributes.get(v.STRIPE_AMOUNT), v.STRIPE_AMOUNT),
        currency=_text(attributes.get(v.STRIPE_CURRENCY), 16),
        event_created=max(_integer(attributes.get(v.STRIPE_EVENT_CREATED), v.STRIPE_EVENT_CREATED) or 0, 0),
        trace_id=fields.trace_id,
        span_id=fields.span_id,
        receipt_trace_id=fields.link_trace_id,
        receipt_span_id=fields.link_span_id,
        source=source,
        attributes={
            key: _text(value, 1024)
            for key, value in list(attributes.items())[: _MAX_EXTRA_ATTRIBUTES + len(_VOCABULARY_KEYS)]
            if key not in _VOCABULARY_KEYS
        },
    )
    if is_receipt:
        signal.due_at = _due_at(attributes, at, default_timeout_s)
    else:
        signal.outcome = _outcome(fields)
        if signal.outcome == v.OUTCOME_FAILURE:
            signal.error_type = _text(attributes.get(v.ERROR_TYPE), _MAX_ID) or "unknown"
            signal.error_message = _text(attributes.get(v.FULFILLMENT_ERROR_MESSAGE) or fields.status_message)
    return signal
