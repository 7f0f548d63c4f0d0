"""Result spans: the business effect of a Stripe event was applied, failed or was already done."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from . import _runtime
from . import vocabulary as v
from ._events import AttributeValue, event_info
from ._receipt import ReceiptHandle, receipt_reference

_logger = logging.getLogger("fulfillwatch.instrumentation")
_F = TypeVar("_F", bound=Callable[..., Any])

ReceiptRef = ReceiptHandle | Mapping[str, str] | None
#: An event id, an event (dict / ``stripe.Event``), or, for decorators, a function of the
#: decorated function's arguments returning one of those.
EventRef = Any


def error_type(error: BaseException) -> str:
    """``error.type`` for an exception: its qualified class name (``builtins.`` dropped)."""
    cls = type(error)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def _mark_failed(span: Span, error: BaseException | str | None) -> None:
    if isinstance(error, BaseException):
        kind, message = error_type(error), str(error) or error_type(error)
        span.record_exception(error)
    else:
        kind, message = "fulfillwatch.Failure", error or "failure"
    span.set_attribute(v.ERROR_TYPE, kind)
    span.set_attribute(v.FULFILLMENT_ERROR_MESSAGE, message[:4096])
    span.set_status(Status(StatusCode.ERROR, message[:1024]))


def start_result_span(
    event: EventRef,
    effect: str | None,
    receipt: ReceiptRef,
    attempt: int | None,
    replay_id: str | None,
    event_type: str | None,
    *,
    context: otel_context.Context | None = None,
    start_time: int | None = None,
) -> Span:
    """Start a result span (not made current); the integrations end it with
    :func:`end_result_span`. ``context`` is the parent (default: the current context)."""
    receipt_context, receipt_effect, receipt_type = receipt_reference(receipt)
    if type(event) is str:  # the common case, without building an EventInfo
        attributes: dict[str, AttributeValue] = {v.STRIPE_EVENT_ID: event}
        if event_type or receipt_type:
            attributes[v.STRIPE_EVENT_TYPE] = event_type or receipt_type or ""
    else:
        attributes = event_info(event, event_type or receipt_type).span_attributes()
    if not attributes[v.STRIPE_EVENT_ID]:
        raise ValueError("the Stripe event id is empty")
    chosen_effect = effect or receipt_effect
    if chosen_effect:
        attributes[v.FULFILLMENT_EFFECT] = chosen_effect
    if attempt is not None:
        attributes[v.FULFILLMENT_ATTEMPT] = int(attempt)
    if replay_id:
        attributes[v.FULFILLMENT_REPLAY_ID] = replay_id
    links = [Link(receipt_context)] if receipt_context is not None else None
    return _runtime.tracer().start_span(
        v.RESULT_SPAN, context, kind=SpanKind.INTERNAL, attributes=attributes, links=links, start_time=start_time
    )


def end_result_span(span: Span, outcome: str, error: BaseException | str | None = None) -> None:
    """Set the outcome (and the error of a failure) on a result span and end it."""
    span.set_attribute(v.FULFILLMENT_OUTCOME, outcome)
    if outcome == v.OUTCOME_FAILURE:
        _mark_failed(span, error)
    span.end()


class Fulfillment:
    """Record the result of the business effect of a Stripe event (``fulfillment``).

    As a context manager (sync or async)::

        with fulfillment(event_id, receipt=job["receipt"]) as run:
            if already_granted(event_id):
                run.skip()
            else:
                grant_credits(...)

    As a decorator, ``event`` (and ``receipt``) may be functions of the decorated function's
    arguments; every call is its own run::

        @fulfillment(lambda job: job["event_id"], receipt=lambda job: job["receipt"])
        def grant_credits(job): ...

    Normal exit records ``success``; an exception records ``failure`` with ``error.type`` and
    its message and is re-raised unchanged. Call :meth:`skip` on the idempotency path ("already
    done") or :meth:`fail` for an error the code handles without raising. ``receipt`` (a
    :class:`ReceiptHandle` or its ``carrier()`` dict) links the result span to the receipt span
    and supplies the effect and event type. ``attempt`` numbers retries; ``replay_id`` marks a
    run triggered by a reprocess callback.
    """

    __slots__ = (
        "_attempt",
        "_effect",
        "_error",
        "_event",
        "_event_type",
        "_outcome",
        "_receipt",
        "_replay_id",
        "_span",
        "_token",
    )

    def __init__(
        self,
        event: EventRef | Callable[..., EventRef],
        *,
        effect: str | None = None,
        receipt: ReceiptRef | Callable[..., ReceiptRef] = None,
        attempt: int | None = None,
        replay_id: str | None = None,
        event_type: str | None = None,
    ) -> None:
        # Any: for a decorator these may be functions of the call's arguments (see _run_for).
        self._event: Any = event
        self._effect = effect
        self._receipt: Any = receipt
        self._attempt = attempt
        self._replay_id = replay_id
        self._event_type = event_type
        self._span: Span | None = None
        self._token: object | None = None
        self._outcome: str | None = None
        self._error: BaseException | str | None = None

    @property
    def outcome(self) -> str | None:
        """The outcome chosen so far (``None`` until the block ends or skip/fail is called)."""
        return self._outcome

    def skip(self) -> None:
        """Mark this run as ``skipped``: the effect had already been applied."""
        self._outcome = v.OUTCOME_SKIPPED

    def fail(self, error: BaseException | str) -> None:
        """Mark this run as ``failure`` without raising (for handled errors)."""
        self._outcome, self._error = v.OUTCOME_FAILURE, error

    # --- the run ------------------------------------------------------------------------------

    # start/close catch internal errors themselves rather than through _runtime.safely: they
    # run for every fulfillment, and the extra call layer showed in the benchmark.
    def start(self) -> Fulfillment:
        """Open the result span (``__enter__`` does this)."""
        try:
            self._begin()
        except Exception:  # noqa: BLE001 - reported below; telemetry trouble never raises into business code
            _runtime.report_internal_error(self._begin)
        return self

    def close(self, raised: BaseException | None) -> None:
        """End the result span; ``raised`` is the exception leaving the block, if any."""
        try:
            self._finish(raised)
        except Exception:  # noqa: BLE001 - reported below; telemetry trouble never raises into business code
            _runtime.report_internal_error(self._finish)

    def _begin(self) -> None:
        self._span = start_result_span(
            self._event, self._effect, self._receipt, self._attempt, self._replay_id, self._event_type
        )
        # Spans the business code opens inside the block become children of the result span.
        self._token = otel_context.attach(trace.set_span_in_context(self._span))

    def _finish(self, raised: BaseException | None) -> None:
        span, self._span = self._span, None
        if self._token is not None:
            otel_context.detach(self._token)  # type: ignore[arg-type]
            self._token = None
        if span is None:
            return
        if raised is not None:
            self._outcome, self._error = v.OUTCOME_FAILURE, raised
        end_result_span(span, self._outcome or v.OUTCOME_SUCCESS, self._error)

    # --- context manager and decorator protocols ----------------------------------------------

    def __enter__(self) -> Fulfillment:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close(exc)

    async def __aenter__(self) -> Fulfillment:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close(exc)

    def _run_for(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Fulfillment:
        """A fresh run for one call of a decorated function (event/receipt may be functions)."""
        return Fulfillment(
            _call_guarded(self._event, args, kwargs),
            effect=self._effect,
            receipt=_call_guarded(self._receipt, args, kwargs),
            attempt=self._attempt,
            replay_id=self._replay_id,
            event_type=self._event_type,
        )

    def __call__(self, function: _F) -> _F:
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with self._run_for(args, kwargs):
                    return await function(*args, **kwargs)

            return cast(_F, async_wrapper)

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._run_for(args, kwargs):
                return function(*args, **kwargs)

        return cast(_F, wrapper)


def _call_guarded(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    if not callable(value) or isinstance(value, (ReceiptHandle, Mapping)):
        return value
    return _runtime.safely(value, None, *args, **kwargs)


def record_result(
    event: EventRef,
    outcome: str,
    *,
    effect: str | None = None,
    error: BaseException | str | None = None,
    receipt: ReceiptRef = None,
    attempt: int | None = None,
    replay_id: str | None = None,
    event_type: str | None = None,
) -> None:
    """Record a result explicitly: ``outcome`` is ``"success"``, ``"failure"`` or ``"skipped"``.

    ``skipped`` is the idempotency path: the effect was found already applied. ``error`` (an
    exception or a message) describes a failure.
    """
    if outcome not in v.OUTCOMES:
        _logger.error(
            "fulfillwatch: record_result outcome %r is not one of %s; not recorded",
            outcome,
            ", ".join(v.OUTCOMES),
        )
        return
    run = Fulfillment(
        event, effect=effect, receipt=receipt, attempt=attempt, replay_id=replay_id, event_type=event_type
    ).start()
    if outcome == v.OUTCOME_FAILURE:
        run.fail(error if error is not None else "failure")
    elif outcome == v.OUTCOME_SKIPPED:
        run.skip()
    run.close(None)


#: The public name: ``with fulfillment(...)`` / ``@fulfillment(...)``.
fulfillment = Fulfillment
