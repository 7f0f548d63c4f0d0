"""Fulfillwatch server: detection, the incident log, delivery, the HTTP API and the CLI.

Where things live (``docs/ARCHITECTURE.md`` maps each behaviour to its package):

* :mod:`.model` — expectations, verdicts, incident states and transitions (pure, no I/O);
* :mod:`.detection` — the engine: watermarks, windows, the lease;
* :mod:`.live_keys` — the in-memory copies of the live set's keys (open expectations, active
  incidents) that the engine decides from;
* :mod:`.incidents` — the append-only incident log, lifecycle actions, bulk jobs, reads for the API;
* :mod:`.delivery` — signed reprocess callbacks and alerts, with retries;
* :mod:`.sources` — signals from other tables (the Collector's ``otel_traces``) and Stripe's
  record of events (the reconciler);
* :mod:`.api` — the FastAPI application;
* the process shell: :mod:`.cli` (the ``fulfillwatch`` command), :mod:`.reconcile_cli` and
  :mod:`.reconcile` (``fulfillwatch reconcile``), :mod:`.server` (``serve`` and the split
  services), :mod:`.settings` / :mod:`.config` / :mod:`.stripe_config` (configuration),
  :mod:`.schema` / :mod:`.schema_declared` (tables and migrations), :mod:`.readiness`
  (``/readyz``), :mod:`.logs` (log format).
"""

from fulfillwatch.incident_engine.version import __version__

__all__ = ["__version__"]
