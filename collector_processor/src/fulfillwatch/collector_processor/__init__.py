"""Fulfillwatch ingest: OTLP receiver, signal model and the ClickHouse storage layer.

* :mod:`.store` — the storage DSN and clients (chDB embedded or a ClickHouse server);
* :mod:`.migrations` — versioned schema migrations and retention;
* :mod:`.signals` — the ``fw_signals`` table and its rows (Arrow batches);
* :mod:`.identity` — which expectation a signal is about, and the effect's stored/display forms;
* :mod:`.otlp` / :mod:`.span_signals` — OTLP decoding and span → signal rules;
  :mod:`.otlp_wire` — a protobuf request read one span at a time;
* :mod:`.writer` — the group-commit writer; :mod:`.receiver` — ``POST /v1/traces``;
  :mod:`.rest_ingest` — ``POST /v1/receipt`` and ``/v1/result``;
* :mod:`.ingest_auth` — projects and ingest keys; :mod:`.ingest_gate` — auth, size, time and
  in-flight limits before a body is read;
* :mod:`.app` — the ingest application; :mod:`.responses` / :mod:`.catch_all` — answers and
  the last-resort error handler; :mod:`.counters` — ingest counters;
* :mod:`.redaction` — URLs without their credentials, for logs and banners.
"""

from .version import __version__

__all__ = ["__version__"]
