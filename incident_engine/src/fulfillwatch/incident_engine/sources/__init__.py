"""Sources of signals other than the ingest listeners, run by the engine before each tick.

* :mod:`.otel_traces` — fulfillment spans from the Collector ClickHouse exporter's table.
"""

__all__ = ["otel_traces"]
