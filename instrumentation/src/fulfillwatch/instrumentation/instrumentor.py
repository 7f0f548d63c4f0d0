"""``FulfillwatchInstrumentor``: the OpenTelemetry-conventional way to switch Fulfillwatch on.

It is registered under the ``opentelemetry_instrumentor`` entry point (name ``fulfillwatch``), so
``opentelemetry-instrument python app.py`` configures Fulfillwatch with the provider the
auto-instrumentation installed, with options from the ``FULFILLWATCH_*`` variables. In code,
``FulfillwatchInstrumentor().instrument(tracer_provider=...)`` is the same as :func:`init`.
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
