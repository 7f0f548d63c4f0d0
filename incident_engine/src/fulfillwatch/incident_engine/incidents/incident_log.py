"""Appending to the incident log: the sequence that orders its rows, and the journal."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

from fulfillwatch.collector_processor.store import Store, insert_rows
from fulfillwatch.incident_engine.incidents import active_incidents
from fulfillwatch.incident_engine.model.transitions import Transition
from fulfillwatch.incident_engine.schema import INCIDENT_LOG_TABLE, LOG_REASON_CHARS

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


@dataclass
class _Appends:
    """What this process appended to one database's incident log, and how much of it is known
    refreshed in ``fw_active_incidents``: by its journal after the append, or by a feed follower."""

    appended: int = 0  # seq of the last row appended
    refreshed: int = 0  # seq through which every appended row was refreshed

    @property
    def settled(self) -> bool:
        """Every row appended was refreshed."""
        return self.refreshed == self.appended


#: Appends, and a journal's refresh after its append, run one at a time in the process: a
#: refresh then reads every row appended before it, so two writers of one incident cannot leave
#: the older view last. With an embedded store this process is the only writer, and a feed
#: follower has nothing to settle while every append was refreshed (see :func:`follow_settled`).
_APPENDS_LOCK = threading.RLock()
_APPENDS: dict[str, _Appends] = {}  # by database (one chDB directory per process)


def _appends(client: Client) -> _Appends:
    return _APPENDS.setdefault(client.database or "", _Appends())


def follow_settled(client: Client, follow: Callable[[int | None], int]) -> int:
    """Run a feed follower's ``follow`` with no append in between, telling it the ``seq``
    through which every row this process appended was refreshed by its writer (``None`` when a
    row was not: appended outside a journal, or its refresh failed). After it, everything this
    process appended counts as refreshed. For embedded stores only, where no other process
    writes the log."""
    with _APPENDS_LOCK:
        appends = _appends(client)
        position = follow(appends.appended if appends.settled else None)
        appends.refreshed = appends.appended
        return position


def append_transitions(client: Client, transitions: Sequence[Transition]) -> list[int]:
    """Append transitions in order (one insert); returns the ``seq`` given to each."""
    if not transitions:
        return []
    with _APPENDS_LOCK:
        seqs = _append(client, transitions)
        _appends(client).appended = seqs[-1]
        return seqs


def _append(client: Client, transitions: Sequence[Transition]) -> list[int]:
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
            t.reason[:LOG_REASON_CHARS],
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
    insert_rows(client, INCIDENT_LOG_TABLE, rows, _COLUMNS)
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

    def append(
        self,
        transitions: Sequence[Transition],
        *,
        purpose: str = "journal",
        new_incidents: Collection[str] = frozenset(),
    ) -> None:
        """Store ``transitions`` (one insert, in order), then notify the listeners.

        ``new_incidents``: incidents whose first rows these are (the writer read that they had
        none); their rows in ``fw_active_incidents`` are made from the transitions instead of
        being read back from the log (see :func:`~.active_incidents.refresh_after_append`)."""
        if not transitions:
            return
        client = self._store.client(purpose)
        with _APPENDS_LOCK:
            appends = _appends(client)
            settled = appends.settled
            seqs = append_transitions(client, transitions)
            active_incidents.refresh_after_append(client, transitions, new_incidents)
            if settled:  # else an earlier row still waits for a follower
                appends.refreshed = seqs[-1]
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
