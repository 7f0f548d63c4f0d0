"""Ingest counters since the process started, shown by ``/healthz``."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields


@dataclass
class IngestCounters:
    """Counts of requests and spans seen by the receivers of this process."""

    requests: int = 0
    spans_received: int = 0
    signals_stored: int = 0
    spans_ignored: int = 0
    spans_rejected: int = 0
    requests_malformed: int = 0
    requests_too_large: int = 0
    requests_unsupported: int = 0
    requests_store_unavailable: int = 0
    #: Requests the store refused for their own content (400), after a shared insert failed.
    requests_rejected_by_store: int = 0
    requests_unauthorized: int = 0
    #: Refused with 429 because the in-flight byte budget was spent.
    requests_throttled: int = 0
    #: Bodies that did not arrive within the read timeout (408).
    requests_timed_out: int = 0
    #: Clients that went away before sending their whole body (or before the answer).
    client_disconnects: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **increments: int) -> None:
        """Add to several counters at once."""
        with self._lock:
            for name, amount in increments.items():
                setattr(self, name, getattr(self, name) + amount)

    def snapshot(self) -> dict[str, int]:
        """A copy of the counters."""
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
