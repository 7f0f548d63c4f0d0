"""Appending to the incident log: the sequence that orders its rows, and the journal."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence

from clickhouse_connect.driver.client import Client

from fulfillwatch.collector_processor.store import Store
from fulfillwatch.incident_engine.incidents import active_incidents
from fulfillwatch.incident_engine.model.transitions import Transition, TransitionType
from fulfillwatch.incident_engine.schema import INCIDENT_LOG_TABLE

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
    "project",
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


def append_transitions(client: Client, transitions: Sequence[Transition]) -> list[int]:
    """Append transitions in order (one insert); returns the ``seq`` given to each."""
    if not transitions:
        return []
    seqs = [next_seq() for _ in transitions]
    rows = [
        [
            t.incident_id,
            t.transition_id,
            seq,
            t.at,
            t.transition.value,
            t.state.value if t.state is not None else "",
            t.kind,
            t.actor,
            t.reason[:4096],
            t.cause,
            t.identity.stripe_event_id,
            t.identity.effect,
            t.identity.event_type,
            t.identity.service,
            t.replay_id,
            json.dumps(dict(t.details), default=str, sort_keys=True),
            t.identity.project,
        ]
        for t, seq in zip(transitions, seqs, strict=True)
    ]
    client.insert(INCIDENT_LOG_TABLE, rows, column_names=_COLUMNS)
    return seqs


Listener = Callable[[Sequence[Transition]], None]
#: Seqs remembered for the feed follower; beyond this (a process without an engine) they are
#: forgotten, which only costs the follower elsewhere a refresh it could have skipped.
_MAX_REFRESHED = 100_000


class Journal:
    """The one way transitions are written: append, bring ``fw_active_incidents`` up to date
    for the incidents written, then tell the listeners (alerts).

    The engine, the API's lifecycle actions, the callback dispatcher and the alert sender all
    write through it, so that every transition — whoever made it — reaches the same listeners.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._refreshed: set[int] = set()

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener`` with every batch of transitions after it is stored (it must be
        quick and thread-safe: writers run in worker threads)."""
        self._listeners.append(listener)

    def append(self, transitions: Sequence[Transition], *, purpose: str = "journal") -> None:
        """Store ``transitions`` (one insert, in order), then notify the listeners."""
        if not transitions:
            return
        client = self._store.client(purpose)
        seqs = append_transitions(client, transitions)
        # Alert attempts change nothing an incident listing shows; everything else may.
        active_incidents.refresh(
            client, (t.incident_id for t in transitions if t.transition is not TransitionType.ALERT_ATTEMPT)
        )
        with self._lock:
            if len(self._refreshed) > _MAX_REFRESHED:  # nobody follows the feed in this process
                self._refreshed.clear()
            self._refreshed.update(seqs)
        for listener in self._listeners:
            listener(transitions)

    def take_refreshed(self) -> set[int]:
        """The ``seq`` of every row this journal appended, and whose incidents it refreshed in
        ``fw_active_incidents`` after the append, since the last call: the feed follower needs
        not refresh them again (see :class:`~.active_incidents.FeedFollower`)."""
        with self._lock:
            taken, self._refreshed = self._refreshed, set()
        return taken
