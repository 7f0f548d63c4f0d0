"""Celery integration: receipts when the broker accepts a fulfillment task, results when it ends.

Most Stripe apps answer the webhook and enqueue a Celery task; this makes that pattern need no
hand-written receipt or result calls. Declare which tasks fulfil a Stripe event and where the
event (or its id) is among their arguments — with the task option, the decorator, or a setting::

    @app.task(fulfillment={"event": "event_id", "effect": "grant_credits"})
    def grant_credits(event_id, customer): ...

    @app.task
    @fulfillment_task(event="event")            # the parsed webhook dict: id and type known
    def unlock_access(event): ...

    CeleryFulfillmentInstrumentor().instrument(tasks={"shop.tasks.update_plan": {"event": "event_id"}})
    # or FULFILLWATCH_CELERY_TASKS="shop.tasks.update_plan=event_id:update_plan"

Then, with ``fulfillwatch.instrumentation.init()`` in the web app and the worker (it enables
this when Celery is importable), or under ``opentelemetry-instrument``:

* the **receipt** span starts before the message is published and ends only when the broker
  accepted it (``after_task_publish``): a publish that fails records nothing;
* the **result** span is recorded when the task ends: ``success``; ``failure`` only when Celery
  will not retry any more (a retried run records nothing, the final result carries its
  ``fulfillment.attempt``); ``skipped`` when the task called :func:`skip_fulfillment` (the
  idempotency path). A worker killed mid-task records nothing — which is what
  ``result_missing`` is for;
* the result span is in the worker's trace (its parent is the publisher's context propagated by
  ``opentelemetry-instrumentation-celery``) and links to the receipt span; prefork and solo
  pools work; task signatures and return values are untouched, and telemetry errors are logged,
  never raised into a task.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from celery import current_app, current_task, signals
from opentelemetry import context as otel_context
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.trace import Span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from . import _runtime
from . import vocabulary as v
from ._events import EventInfo, event_info
from ._receipt import start_receipt_span
from ._result import end_result_span, start_result_span

_logger = logging.getLogger("fulfillwatch.instrumentation")
#: Message header carrying the receipt's carrier to the worker.
HEADER = "fulfillwatch"
ENV_TASKS = "FULFILLWATCH_CELERY_TASKS"
_MARK = "__fulfillwatch_task__"
_MAX_PENDING = 10_000
_T = TypeVar("_T")
_W3C = TraceContextTextMapPropagator()


@dataclass(frozen=True)
class TaskSpec:
    """How to read a fulfillment task's arguments.

    ``event``: the name of the parameter holding the Stripe event (a dict, a ``stripe.Event`` or
    an event id), or a function of the task's ``(*args, **kwargs)`` returning one of those.
    ``effect`` names the business effect (default: the event type); ``event_type`` helps when
    only an id is passed; ``timeout`` overrides the deadline.
    """

    event: str | Callable[..., Any] = "event"
    effect: str | None = None
    event_type: str | None = None
    timeout: float | timedelta | None = None

    @classmethod
    def of(cls, value: Any) -> TaskSpec:
        """A spec from a ``TaskSpec``, a dict of its fields, or a parameter name."""
        if isinstance(value, TaskSpec):
            return value
        if isinstance(value, str):
            return cls(event=value)
        if isinstance(value, Mapping):
            return cls(**dict(value))
        raise TypeError(f"a fulfillment task spec must be a TaskSpec, a dict or a parameter name, not {value!r}")


def fulfillment_task(
    event: str | Callable[..., Any] = "event",
    *,
    effect: str | None = None,
    event_type: str | None = None,
    timeout: float | timedelta | None = None,
) -> Callable[[_T], _T]:
    """Mark a task (or the function it is made from) as fulfilling a Stripe event."""
    spec = TaskSpec(event=event, effect=effect, event_type=event_type, timeout=timeout)

    def mark(target: _T) -> _T:
        setattr(target, _MARK, spec)
        return target

    return mark


def skip_fulfillment() -> None:
    """Call inside a fulfillment task that finds its effect already applied (the idempotency
    path): the task's result is recorded as ``skipped`` instead of ``success``."""
    _runtime.safely(CeleryFulfillmentInstrumentor()._skip_current, None)


def parse_task_setting(text: str) -> dict[str, TaskSpec]:
    """``"shop.tasks.grant=event_id:grant_credits,shop.tasks.unlock=event"`` → specs by task name."""
    specs: dict[str, TaskSpec] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, rest = item.partition("=")
        parameter, _, effect = rest.partition(":")
        if not sep or not name.strip() or not parameter.strip():
            raise ValueError(f"{ENV_TASKS} entry {item!r} is not 'task.name=event_parameter[:effect]'")
        specs[name.strip()] = TaskSpec(event=parameter.strip(), effect=effect.strip() or None)
    return specs


@dataclass
class _Run:
    """A fulfillment task running in this worker process."""

    started_ns: int
    event: Any
    effect: str | None
    event_type: str | None
    carrier: Mapping[str, str] | None
    attempt: int
    parent: otel_context.Context
    skipped: bool = False


class _RequestGetter:
    """Reads propagated headers (``traceparent``) from a Celery request."""

    def get(self, carrier: Any, key: str) -> list[str] | None:
        value = getattr(carrier, key, None)
        if value is None:
            return None
        return list(value) if isinstance(value, (list, tuple)) else [str(value)]

    def keys(self, carrier: Any) -> list[str]:
        return []


class CeleryFulfillmentInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Records receipts and results of declared Celery fulfillment tasks (see the module doc).

    ``instrument(tasks={...}, tracer_provider=...)``: ``tasks`` maps task names to a
    :class:`TaskSpec` (or its dict, or a parameter name), on top of the task option
    ``fulfillment=...``, the :func:`fulfillment_task` decorator and ``FULFILLWATCH_CELERY_TASKS``.
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("celery >= 5.2, < 6",)

    def _instrument(self, **kwargs: Any) -> None:
        if kwargs.get("tracer_provider") is not None or _runtime._state is None:
            provider = kwargs.get("tracer_provider")
            _runtime.configure({"tracer_provider": provider} if provider is not None else {})
        self._specs: dict[str, TaskSpec] = {}
        try:
            self._specs.update(parse_task_setting(os.environ.get(ENV_TASKS, "")))
        except ValueError as exc:
            _logger.error("fulfillwatch: ignoring %s: %s", ENV_TASKS, exc)
        for name, spec in (kwargs.get("tasks") or {}).items():
            self._specs[name] = TaskSpec.of(spec)
        self._lock = threading.Lock()
        self._published: OrderedDict[str, Span] = OrderedDict()
        self._running: dict[str, _Run] = {}
        self._signatures: dict[str, inspect.Signature | None] = {}
        for signal, handler in self._handlers().items():
            signal.connect(handler, weak=False, dispatch_uid=f"fulfillwatch-{handler.__name__}")

    def _uninstrument(self, **kwargs: Any) -> None:
        for signal, handler in self._handlers().items():
            signal.disconnect(handler, dispatch_uid=f"fulfillwatch-{handler.__name__}")

    def _handlers(self) -> dict[Any, Callable[..., None]]:
        return {
            signals.before_task_publish: self._before_publish,
            signals.after_task_publish: self._after_publish,
            signals.task_prerun: self._prerun,
            signals.task_success: self._success,
            signals.task_failure: self._failure,
            signals.task_retry: self._retry,
            signals.task_postrun: self._postrun,
        }

    # --- finding specs and events --------------------------------------------------------------

    def _spec(self, name: str, task: Any = None) -> TaskSpec | None:
        if name in self._specs:
            return self._specs[name]
        if task is None:
            task = current_app.tasks.get(name)
        if task is None:
            return None
        declared = getattr(task, "fulfillment", None) or getattr(task, _MARK, None)
        declared = declared or getattr(getattr(task, "run", None), _MARK, None)
        return TaskSpec.of(declared) if declared is not None else None

    def _event(self, spec: TaskSpec, name: str, args: Any, kwargs: Mapping[str, Any]) -> Any:
        if callable(spec.event):
            return spec.event(*args, **kwargs)
        if spec.event in kwargs:
            return kwargs[spec.event]
        if name not in self._signatures:
            task = current_app.tasks.get(name)
            self._signatures[name] = inspect.signature(task.run) if task is not None else None
        signature = self._signatures[name]
        if signature is None:
            return None
        return signature.bind_partial(*args, **kwargs).arguments.get(spec.event)

    def _info(self, spec: TaskSpec, name: str, args: Any, kwargs: Mapping[str, Any]) -> EventInfo | None:
        value = self._event(spec, name, args, kwargs)
        if value is None:
            _logger.warning("fulfillwatch: no Stripe event in the arguments of %s (spec %s)", name, spec.event)
            return None
        info = event_info(value, spec.event_type)
        if info.type and not _runtime.current_options().is_tracked(info.type):
            return None
        return info

    # --- publisher: the receipt ----------------------------------------------------------------

    def _before_publish(self, sender: str | None = None, headers: Any = None, body: Any = None, **_: Any) -> None:
        _runtime.safely(self._start_receipt, None, sender, headers, body)

    def _start_receipt(self, name: str | None, headers: Any, body: Any) -> None:
        if not name or headers is None or HEADER in headers:  # a retry keeps its first receipt
            return
        spec = self._spec(name)
        if spec is None:
            return
        args, kwargs = (body[0], body[1]) if isinstance(body, (list, tuple)) else (body["args"], body["kwargs"])
        info = self._info(spec, name, args, kwargs)
        if info is None:
            return
        span, handle = start_receipt_span(info, spec.effect, spec.timeout)
        headers[HEADER] = handle.carrier()
        with self._lock:
            self._published[str(headers.get("id"))] = span
            while len(self._published) > _MAX_PENDING:  # publishes that never completed
                self._published.popitem(last=False)

    def _after_publish(self, headers: Any = None, **_: Any) -> None:
        # The broker accepted the message: now the receipt is true, and exported.
        def end() -> None:
            with self._lock:
                span = self._published.pop(str((headers or {}).get("id")), None)
            if span is not None:
                span.end()

        _runtime.safely(end, None)

    # --- worker: the result --------------------------------------------------------------------

    def _prerun(
        self, task_id: str | None = None, task: Any = None, args: Any = (), kwargs: Any = None, **_: Any
    ) -> None:
        _runtime.safely(self._start_run, None, task_id, task, args, kwargs or {})

    def _start_run(self, task_id: str | None, task: Any, args: Any, kwargs: Mapping[str, Any]) -> None:
        if task_id is None or task is None:
            return
        spec = self._spec(task.name, task)
        if spec is None:
            return
        request = task.request
        carrier = getattr(request, HEADER, None) or (request.headers or {}).get(HEADER)
        if isinstance(carrier, Mapping) and carrier.get(v.CARRIER_EVENT_ID):
            event: Any = carrier[v.CARRIER_EVENT_ID]
            event_type = carrier.get(v.CARRIER_EVENT_TYPE) or spec.event_type
        else:  # published without the instrumentation: read the arguments
            carrier = None
            info = self._info(spec, task.name, args, kwargs)
            if info is None:
                return
            event, event_type = info.id, info.type or spec.event_type
        run = _Run(
            started_ns=time.time_ns(),
            event=event,
            effect=spec.effect,
            event_type=event_type,
            carrier=carrier,
            attempt=int(request.retries or 0) + 1,
            parent=_W3C.extract(request, getter=_RequestGetter()),  # type: ignore[arg-type]
        )
        with self._lock:
            self._running[task_id] = run

    def _take(self, task_id: str | None) -> _Run | None:
        with self._lock:
            return self._running.pop(task_id, None) if task_id else None

    def _emit(self, run: _Run, outcome: str, error: BaseException | None = None) -> None:
        span = start_result_span(
            run.event,
            run.effect,
            run.carrier,
            run.attempt,
            None,
            run.event_type,
            context=run.parent,
            start_time=run.started_ns,
        )
        end_result_span(span, outcome, error)

    def _success(self, sender: Any = None, **_: Any) -> None:
        def record() -> None:
            run = self._take(getattr(getattr(sender, "request", None), "id", None))
            if run is not None:
                self._emit(run, v.OUTCOME_SKIPPED if run.skipped else v.OUTCOME_SUCCESS)

        _runtime.safely(record, None)

    def _failure(self, task_id: str | None = None, exception: BaseException | None = None, **_: Any) -> None:
        # Celery sends task_failure only when it will not retry (a retry sends task_retry).
        def record() -> None:
            run = self._take(task_id)
            if run is not None:
                self._emit(run, v.OUTCOME_FAILURE, exception)

        _runtime.safely(record, None)

    def _retry(self, request: Any = None, **_: Any) -> None:
        # Another attempt is coming: this one is not a result (its attempt number will be).
        _runtime.safely(self._take, None, getattr(request, "id", None))

    def _postrun(self, task_id: str | None = None, **_: Any) -> None:
        _runtime.safely(self._take, None, task_id)  # revoked, ignored...: nothing to record

    def _skip_current(self) -> None:
        if not self.is_instrumented_by_opentelemetry:
            _logger.warning("fulfillwatch: skip_fulfillment() needs the Celery instrumentation (call init())")
            return
        task_id = getattr(getattr(current_task, "request", None), "id", None)
        with self._lock:
            run = self._running.get(task_id) if task_id else None
        if run is None:
            _logger.warning("fulfillwatch: skip_fulfillment() called outside a running fulfillment task")
            return
        run.skipped = True
