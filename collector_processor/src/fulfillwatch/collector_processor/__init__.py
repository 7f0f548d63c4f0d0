"""Fulfillwatch ingest: OTLP receiver, signal model and the ClickHouse storage layer.

* :mod:`.store` — the storage DSN and clients (chDB embedded or a ClickHouse server);
* :mod:`.migrations` — versioned schema migrations and retention;
* :mod:`.signals` — the ``fw_signals`` table and its rows;
* :mod:`.otlp` / :mod:`.span_signals` — OTLP decoding and span → signal rules;
* :mod:`.writer` — the group-commit writer; :mod:`.receiver` — ``POST /v1/traces``.
"""

from .version import __version__

__all__ = ["__version__"]
