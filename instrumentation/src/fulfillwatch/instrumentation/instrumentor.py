"""``FulfillwatchInstrumentor``: the OpenTelemetry-conventional way to configure Fulfillwatch.

``FulfillwatchInstrumentor().instrument(tracer_provider=...)`` is the same as :func:`init` with
that provider, for apps that set up instrumentations in one place. It instruments no library,
so it is not registered as an ``opentelemetry_instrumentor`` entry point; the registered one is
the Celery integration (``fulfillwatch_celery``), which also configures Fulfillwatch.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from . import _runtime


class FulfillwatchInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Configures Fulfillwatch's receipt/result spans on a tracer provider.

    It instruments no third-party library (``instrumentation_dependencies`` is empty): it only
    binds the Fulfillwatch API to the provider. ``uninstrument()`` forgets that configuration.
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        options: dict[str, object] = {}
        if kwargs.get("tracer_provider") is not None:
            options["tracer_provider"] = kwargs["tracer_provider"]
        _runtime.configure(options)

    def _uninstrument(self, **kwargs: Any) -> None:
        _runtime.reset()
