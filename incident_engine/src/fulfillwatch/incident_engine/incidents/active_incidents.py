"""Keeping ``fw_active_incidents`` in step with the incident log.

The log is the truth; ``fw_active_incidents`` is a derived copy of the summary of every incident
that is still active (open, acknowledged, reprocessing), one row per incident in a key-value
table, so that what on-call looks at — the open incidents, their counts — costs what is live,
not what the log has accumulated. An incident that is resolved or ignored is deleted from it;
one that reopens is written back. Rows are recomputed from the whole log of their incident
(never patched from a new transition onto an older row), so a refresh that runs twice, late or
after a crash writes the same row.

Two paths keep it current:

* **after every append** (:func:`refresh_after_append`, called by the
  :class:`~.incident_log.Journal`): the writer recomputes the incidents it just wrote, so its
  own reads see its own action. An incident the append *opened* — the engine read that it had no
  row — is summarised from its transitions, which are its whole log then (reading it back cost
  a tick that opens an incident ~10-20 ms of its ~70-130); :func:`summary_of_new_incident` is
  checked against the log's summary by a property test;
* **following the feed** (:class:`FeedFollower`, run by the engine every tick): two processes that
  write the same incident at the same moment may each read the log before the other's row is
  visible, and the later refresh can then write the older view. The engine re-derives every
  incident the feed shows changed since its position (minus an overlap), which settles such
  a race within a tick.

The engine decides from the ids of the active incidents on every tick; it keeps them in memory
(a :class:`~..live_keys.KeyCopy`, one per database in a process, :func:`active_ids`), loaded
from the table once and then told of every write this module makes, under one lock with the
write, so the copy is the table as this process wrote it. Other processes' writes reach it
when the engine's follower refreshes those incidents, at the start of its tick. (Looking them
up in the table within the window's statement cost ~4 ms of every tick's ~15.)
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timezone

from clickhouse_connect.driver.client import Client

from fulfillwatch.collector_processor.store import insert_rows
from fulfillwatch.incident_engine.incidents import log_reads
from fulfillwatch.incident_engine.live_keys import KeyCopy
from fulfillwatch.incident_engine.model.transitions import ACTIVE_STATES, Transition, TransitionType
from fulfillwatch.incident_engine.schema import ACTIVE_INCIDENTS_TABLE, LOG_REASON_CHARS

_COLUMNS = [
    "incident_id",
    "state",
    "kind",
    "project",
    "stripe_event_id",
    "event_type",
    "effect",
    "service",
    "opened_at",
    "updated_at",
    "reason",
    "replay_id",
]
#: Feed rows are re-read this far (ns of ``seq``) behind the position: ``seq`` comes from the
#: clock of the process that wrote the row, and another process's row may land a bit late.
OVERLAP_NS = 60 * 10**9
_ACTIVE = [state.value for state in ACTIVE_STATES]


def _active_rows(summaries: str) -> str:
    """The active incidents among ``summaries`` (a :func:`~.log_reads.summary_select`), as rows
    of the table (parameter ``active``: the active states)."""
    return f"""
        SELECT id, current_state, current_kind, project_name, event_id, type, stored_effect, service_name,
               opened_at, updated_at, last_reason, last_replay_id
        FROM ({summaries}) WHERE current_state IN {{active:Array(String)}}
    """


#: Incidents recomputed per query (a bulk action or a restart after one can touch thousands).
_BATCH = 2_000
#: Held around every write of the table and the update of the in-memory copies that follows it,
#: and while a copy is loaded: a copy never misses a write nor sees two in another order.
_WRITES = threading.RLock()
_COPIES: dict[str, KeyCopy] = {}  # by database


def active_ids(client: Client) -> KeyCopy:
    """The in-memory copy of the ids in ``client``'s database (kept up to date from now on; read
    from the table when first asked, and again after it is forgotten, a rebuild or a failed write)."""
    with _WRITES:
        return _COPIES.setdefault(client.database or "", KeyCopy(ACTIVE_INCIDENTS_TABLE, _WRITES))


def _write(client: Client, rows: Sequence[Sequence[object]] = (), closed: Sequence[str] = ()) -> None:
    """Write ``rows``, delete the ``closed`` incidents, and tell the copy."""
    with active_ids(client).writing(added=[str(row[0]) for row in rows], removed=closed):
        if rows:
            insert_rows(client, ACTIVE_INCIDENTS_TABLE, rows, _COLUMNS)
        if closed:
            client.command(
                f"DELETE FROM {ACTIVE_INCIDENTS_TABLE} WHERE incident_id IN {{ids:Array(String)}}",
                parameters={"ids": list(closed)},
            )


def refresh(client: Client, incident_ids: Iterable[str]) -> None:
    """Recompute these incidents from the log: write the active ones, delete the others."""
    ids = sorted(set(incident_ids))
    for start in range(0, len(ids), _BATCH):
        _refresh_batch(client, ids[start : start + _BATCH])


def _refresh_batch(client: Client, ids: list[str]) -> None:
    if not ids:
        return
    summaries = log_reads.summary_select(["incident_id IN {ids:Array(String)}"])
    rows = client.query(_active_rows(summaries), parameters={"ids": ids, "active": _ACTIVE}).result_rows
    _write(client, rows, sorted(set(ids) - {row[0] for row in rows}))


def refresh_after_append(
    client: Client, transitions: Sequence[Transition], new_incidents: Collection[str] = frozenset()
) -> None:
    """Bring the table up to date for the incidents ``transitions`` (just appended, in order)
    touched: those in ``new_incidents`` (these are their first rows) from the transitions, the
    others from the log. Alert attempts change nothing a listing shows: alone, they refresh
    nothing."""
    of_new: dict[str, list[Transition]] = {}
    from_log: set[str] = set()
    for transition in transitions:
        if transition.incident_id in new_incidents:
            of_new.setdefault(transition.incident_id, []).append(transition)
        elif transition.transition is not TransitionType.ALERT_ATTEMPT:
            from_log.add(transition.incident_id)
    rows = []
    for incident_id, its_transitions in of_new.items():
        row = summary_of_new_incident(its_transitions)
        if row is None:
            from_log.add(incident_id)  # not active: the log decides, and deletes any row left
        else:
            rows.append(row)
    _write(client, rows)
    refresh(client, from_log)


_REASONLESS = frozenset({TransitionType.NOTE, TransitionType.CALLBACK_ATTEMPT, TransitionType.ALERT_ATTEMPT})
_NO_TIME = datetime(1970, 1, 1, tzinfo=timezone.utc)


def summary_of_new_incident(transitions: Sequence[Transition]) -> list[object] | None:
    """The table's row of an incident whose whole log is ``transitions`` (in ``seq`` order), as
    :func:`~.log_reads.summary_select` derives it from the log; ``None`` when it is not active."""
    state = next((t.state for t in reversed(transitions) if t.state is not None), None)
    if state not in ACTIVE_STATES:
        return None
    assert state is not None  # for mypy: ACTIVE_STATES holds states only
    identity = transitions[0].identity
    listed = [t.at for t in transitions if t.transition is not TransitionType.ALERT_ATTEMPT]
    return [
        transitions[0].incident_id,
        state.value,
        next((t.kind for t in reversed(transitions) if t.kind), ""),
        identity.project,
        identity.stripe_event_id,
        identity.event_type,
        identity.effect,
        identity.service,
        min(t.at for t in transitions),
        max(listed, default=_NO_TIME),
        next((t.reason for t in reversed(transitions) if t.transition not in _REASONLESS), "")[:LOG_REASON_CHARS],
        next((t.replay_id for t in reversed(transitions) if t.transition is TransitionType.REPROCESS_REQUESTED), ""),
    ]


def rebuild(client: Client) -> int:
    """Derive the whole table from the log (a migration, or a follower without a position);
    returns the feed position it is current with."""
    position = log_reads.latest_seq(client)
    with _WRITES:
        active_ids(client).forget()
        client.command(f"TRUNCATE TABLE {ACTIVE_INCIDENTS_TABLE}")
        client.command(
            f"INSERT INTO {ACTIVE_INCIDENTS_TABLE} ({', '.join(_COLUMNS)}) {_active_rows(log_reads.summary_select())}",
            parameters={"active": _ACTIVE},
        )
    return position


class FeedFollower:
    """Follows the feed for :func:`refresh`: each call re-derives the incidents with rows not
    seen before. Rows are read again from :data:`OVERLAP_NS` before the position — another
    process's row may land after a later-stamped one — but an incident is refreshed again only
    for a row this follower has not seen, so the overlap costs a read, not a refresh.

    Rows this process's journal wrote and refreshed itself (``refreshed``) count as seen: that
    refresh read the log after the row was stored, so it already included it. A row of another
    process that the refresh could not see yet has a ``seq`` of its own, which is not in
    ``refreshed``, and is followed as before. (Refreshing the engine's own rows again cost
    ~20 ms in the tick after every transition.)"""

    def __init__(self, position: int | None) -> None:
        #: Feed ``seq`` up to which the table is current (``None``: never followed).
        self.position = position
        self._seen: set[int] = set()  # seqs read within the overlap
        self._read_once = False

    def catch_up(
        self, client: Client, refreshed: set[int] | frozenset[int] = frozenset(), settled_through: int | None = None
    ) -> int:
        """Refresh what changed, except the rows in ``refreshed`` (their writer refreshed
        them); return the new position. Without a position: rebuild.

        ``settled_through``: the only writer is this process and every row it wrote up to this
        ``seq`` was refreshed by its writer (:func:`~.incident_log.follow_settled`): the feed
        is not read, the position moves there. Read once all the same, at the first call: a
        crash may have come between an append and its refresh."""
        if self.position is None:
            self.position = rebuild(client)
            self._read_once = True
            return self.position
        if settled_through is not None and self._read_once:
            self.position = max(self.position, settled_through)
            return self.position
        self._read_once = True
        oldest = max(0, self.position - OVERLAP_NS)
        rows = log_reads.changes_after(client, oldest)
        seen = self._seen | refreshed
        refresh(client, {incident_id for seq, incident_id in rows if seq not in seen})
        self.position = max([self.position, *(seq for seq, _ in rows)])
        keep_from = self.position - OVERLAP_NS
        self._seen = {seq for seq, _ in rows if seq > keep_from}
        return self.position
