"""Process-wide state of the instrumentation and the guard that keeps it out of the app's way."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from opentelemetry import trace

from . import _provider
from ._config import Options, build_options
from .version import __version__

_logger = logging.getLogger("fulfillwatch.instrumentation")
_T = TypeVar("_T")
_INSTRUMENTATION_SCOPE = "fulfillwatch.instrumentation"


@dataclass(frozen=True)
class _State:
    options: Options
    tracer: trace.Tracer
    provider: Any
    owns_provider: bool


_lock = threading.Lock()
_state: _State | None = None


def configure(options: Mapping[str, object]) -> Options:
    """Apply ``init()`` options. Validation errors raise; nothing after this point does.

    Calling it again is safe: it re-applies the options, and a private provider created by an
    earlier call is kept rather than duplicated (one exporter, one background thread).
    """
    global _state
    validated = build_options(options)
    with _lock:
        provider, owns = _choose_provider(validated, _state)
        tracer = provider.get_tracer(_INSTRUMENTATION_SCOPE, __version__)
        _state = _State(validated, tracer, provider, owns)
    return validated


def _choose_provider(options: Options, previous: _State | None) -> tuple[Any, bool]:
    if options.tracer_provider is not None:
        return options.tracer_provider, False
    found = _provider.app_provider()
    if found is not None:
        return found, False
    if previous is not None and previous.owns_provider:
        return previous.provider, True
    _logger.info("no TracerProvider installed by the app: exporting fulfillment spans over OTLP")
    return _provider.create_private_provider(options.service_name, options.ingest_key), True


def reset() -> None:
    """Forget the configuration (used by ``uninstrument()`` and tests); flushes a private provider."""
    global _state
    with _lock:
        previous, _state = _state, None
    if previous is not None and previous.owns_provider:
        shutdown = getattr(previous.provider, "shutdown", None)
        if callable(shutdown):
            safely(shutdown, None)


def current_options() -> Options:
    """The active options (defaults and ``FULFILLWATCH_*`` variables before ``init()``)."""
    state = _state
    if state is not None:
        return state.options
    return _default_options()


@functools.lru_cache(maxsize=1)
def _default_options() -> Options:
    try:
        return build_options({})
    except (TypeError, ValueError) as exc:
        _logger.error("ignoring invalid FULFILLWATCH_* variables: %s", exc)
        return Options()


def tracer() -> trace.Tracer:
    """The tracer for fulfillment spans; before ``init()``, the global provider's tracer."""
    state = _state
    if state is not None:
        return state.tracer
    return trace.get_tracer(_INSTRUMENTATION_SCOPE, __version__)


def force_flush(timeout_millis: int = 30_000) -> bool:
    """Export buffered spans now (short-lived processes: scripts, tests, serverless)."""
    state = _state
    provider = state.provider if state is not None else trace.get_tracer_provider()
    flush = getattr(provider, "force_flush", None)
    if not callable(flush):
        return True
    return bool(safely(flush, False, timeout_millis))


def safely(function: Callable[..., _T], fallback: _T, /, *args: Any, **kwargs: Any) -> _T:
    """Call ``function``; on an internal error log it and return ``fallback``.

    This is the promise made to the app: telemetry trouble never raises into business code.
    (A plain call, not a decorator factory: it sits on the hot path of every span.)
    """
    try:
        return function(*args, **kwargs)
    except Exception:  # noqa: BLE001 - reported below; the whole point is to never propagate
        report_internal_error(function)
        return fallback


def report_internal_error(function: Callable[..., object]) -> None:
    """Log the exception being handled as an internal error of ``function`` (ignored)."""
    _logger.exception("fulfillwatch: internal error in %s (ignored)", getattr(function, "__name__", function))
