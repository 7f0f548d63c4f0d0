"""Appending to the incident log, and the sequence that orders its rows."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence

from clickhouse_connect.driver.client import Client

from .schema import INCIDENT_LOG_TABLE
from .transitions import Transition

_COLUMNS = [
    "incident_id",
    "transition_id",
    "seq",
    "at",
    "transition",
    "state",
    "kind",
    "actor",
    "reason",
    "cause",
    "stripe_event_id",
    "effect",
    "event_type",
    "service",
    "replay_id",
    "details",
]


class _Sequence:
    """Strictly increasing nanosecond stamps: the order of transitions, even within one tick."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def next(self) -> int:
        with self._lock:
            self._last = max(time.time_ns(), self._last + 1)
            return self._last


next_seq = _Sequence().next


def append_transitions(client: Client, transitions: Sequence[Transition]) -> None:
    """Append transitions in order (one insert)."""
    if not transitions:
        return
    rows = [
        [
            t.incident_id,
            t.transition_id,
            next_seq(),
            t.at,
            t.transition.value,
            t.state.value,
            t.kind,
            t.actor,
            t.reason[:4096],
            t.cause,
            t.stripe_event_id,
            t.effect,
            t.event_type,
            t.service,
            t.replay_id,
            json.dumps(dict(t.details), default=str, sort_keys=True),
        ]
        for t in transitions
    ]
    client.insert(INCIDENT_LOG_TABLE, rows, column_names=_COLUMNS)
