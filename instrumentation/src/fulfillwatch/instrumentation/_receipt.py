"""Receipt spans: the app has durably accepted a Stripe event."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

from opentelemetry.trace import Span, SpanContext, SpanKind, TraceFlags

from . import _runtime
from . import vocabulary as v
from ._config import parse_timeout
from ._events import EventInfo, event_info

_logger = logging.getLogger("fulfillwatch.instrumentation")
_TRACEPARENT = "traceparent"


# The carrier holds the receipt span's context as a W3C ``traceparent`` value. It is formatted
# and parsed here rather than through the propagator API because this runs for every event and
# the propagator's Context round trip costs more than the rest of the receipt.
def format_traceparent(context: SpanContext) -> str:
    """``00-<trace id>-<span id>-<flags>`` (W3C Trace Context, version 00)."""
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def parse_traceparent(value: str) -> SpanContext | None:
    """The span context of a ``traceparent`` value, or ``None`` if it is not a valid one."""
    parts = value.split("-") if isinstance(value, str) else []
    if len(parts) < 4 or len(parts[0]) != 2 or len(parts[1]) != 32 or len(parts[2]) != 16 or parts[0] == "ff":
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3][:2], 16)
    except ValueError:
        return None
    if not trace_id or not span_id:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags))


class ReceiptHandle(NamedTuple):
    """What the app keeps of a recorded receipt: pass ``carrier()`` along with the job.

    An immutable tuple (cheap to build on every webhook). A handle whose ``event_id`` is empty
    stands for a receipt that could not be recorded (the reason was logged); it is still safe
    to use.
    """

    event_id: str
    event_type: str
    #: The effect named at receipt; empty means the event's own fulfillment (its type).
    effect: str
    #: The deadline as Unix seconds (0 when unknown); see :attr:`due_at`.
    due_timestamp: float = 0.0
    span_context: SpanContext | None = None

    @property
    def due_at(self) -> datetime | None:
        """When a success result is due."""
        return datetime.fromtimestamp(self.due_timestamp, timezone.utc) if self.due_timestamp else None

    def carrier(self) -> dict[str, str]:
        """A small JSON-serialisable dict for the job payload.

        Give it to :func:`fulfillment` as ``receipt=`` in the worker: the result span then links
        to this receipt span (trace backends jump between the webhook and the worker trace),
        and the effect and event type need not be repeated.
        """
        nothing: dict[str, str] = {}
        return _runtime.safely(self._carrier, nothing)

    def _carrier(self) -> dict[str, str]:
        if not self.event_id:
            return {}
        carrier: dict[str, str] = {
            v.CARRIER_EVENT_ID: self.event_id,
            v.CARRIER_EVENT_TYPE: self.event_type,
            v.CARRIER_EFFECT: self.effect,
        }
        if self.span_context is not None and self.span_context.is_valid:
            carrier[_TRACEPARENT] = format_traceparent(self.span_context)
        return carrier


_NO_RECEIPT = ReceiptHandle(event_id="", event_type="", effect="")


def record_receipt(
    event: object,
    *,
    effect: str | None = None,
    timeout: float | timedelta | None = None,
    event_type: str | None = None,
) -> ReceiptHandle:
    """Record that the app durably accepted a Stripe event, and return a :class:`ReceiptHandle`.

    ``event`` is a ``stripe.Event``, the webhook's parsed JSON, or an event id string (then pass
    ``event_type=``). ``effect`` names the business effect awaited (default: the event type);
    record one receipt per effect when an event needs several. ``timeout`` (seconds or a
    ``timedelta``) overrides the configured deadline for this event type.

    The span is ended at once, so it is exported even if the process dies right after. An
    explicitly recorded receipt is always tracked, whatever ``tracked_event_types`` says.
    """
    return _runtime.safely(_record_receipt, _NO_RECEIPT, event, effect, timeout, event_type)


def watch_event(event: object, *, effect: str | None = None, event_type: str | None = None) -> ReceiptHandle | None:
    """Record a receipt only when the event's type is tracked (see ``tracked_event_types``).

    For apps that route every webhook through one handler: call it for each event and keep
    the handle when it is not ``None``.
    """

    def _watch() -> ReceiptHandle | None:
        info = event_info(event, event_type)
        if not _runtime.current_options().is_tracked(info.type):
            return None
        return _emit_receipt(info, effect, None)

    return _runtime.safely(_watch, None)


def _record_receipt(
    event: object, effect: str | None, timeout: float | timedelta | None, event_type: str | None
) -> ReceiptHandle:
    return _emit_receipt(event_info(event, event_type), effect, timeout)


def _emit_receipt(info: EventInfo, effect: str | None, timeout: float | timedelta | None) -> ReceiptHandle:
    span, handle = start_receipt_span(info, effect, timeout)
    span.end()
    return handle


class _DueAtFormatter:
    """``fulfillment.due_at`` text for a Unix time. Webhooks arrive many per second, and the
    text changes once a second: formatting it again each time cost more than a span attribute."""

    __slots__ = ("_cached",)

    def __init__(self) -> None:
        self._cached: tuple[int, str] = (-1, "")

    def __call__(self, timestamp: float) -> str:
        second = int(timestamp)
        cached = self._cached  # one read of one tuple: threads never see a torn pair
        if cached[0] == second:
            return cached[1]
        text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
        self._cached = (second, text)
        return text


_due_at_text = _DueAtFormatter()


def start_receipt_span(
    info: EventInfo, effect: str | None, timeout: float | timedelta | None
) -> tuple[Span, ReceiptHandle]:
    """Start a receipt span without ending it: integrations end it once the acceptance is
    durable (the Celery one: when the broker took the message). Only ended spans are exported."""
    if not info.type:
        _logger.warning(
            "fulfillwatch: receipt for %s has no event type; pass event_type= (recorded anyway)",
            info.id,
        )
    options = _runtime.current_options()
    timeout_s = options.timeout_for(info.type) if timeout is None else parse_timeout(timeout, "timeout")
    due = time.time() + timeout_s
    attributes = info.span_attributes()
    attributes[v.FULFILLMENT_TIMEOUT_S] = round(timeout_s) if timeout_s >= 1 else timeout_s
    attributes[v.FULFILLMENT_DUE_AT] = _due_at_text(due)
    if effect:
        attributes[v.FULFILLMENT_EFFECT] = effect
    span = _runtime.tracer().start_span(v.RECEIPT_SPAN, kind=SpanKind.INTERNAL, attributes=attributes)
    return span, ReceiptHandle(info.id, info.type, effect or "", due, span.get_span_context())


def receipt_reference(
    receipt: ReceiptHandle | Mapping[str, str] | None,
) -> tuple[SpanContext | None, str | None, str | None]:
    """The receipt's span context, effect and event type from a handle or a carrier dict."""
    if receipt is None:
        return None, None, None
    if type(receipt) is dict:  # a carrier that travelled with the job: the common case
        return (
            parse_traceparent(receipt.get(_TRACEPARENT, "")),
            receipt.get(v.CARRIER_EFFECT) or None,
            receipt.get(v.CARRIER_EVENT_TYPE) or None,
        )
    if isinstance(receipt, ReceiptHandle):
        return receipt.span_context, receipt.effect or None, receipt.event_type or None
    if not isinstance(receipt, Mapping):
        _logger.warning("fulfillwatch: receipt= must be a ReceiptHandle or its carrier() dict")
        return None, None, None
    return (
        parse_traceparent(receipt.get(_TRACEPARENT, "")),
        receipt.get(v.CARRIER_EFFECT) or None,
        receipt.get(v.CARRIER_EVENT_TYPE) or None,
    )
