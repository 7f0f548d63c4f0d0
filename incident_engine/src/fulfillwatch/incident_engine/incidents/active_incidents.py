"""Keeping ``fw_active_incidents`` in step with the incident log.

The log is the truth; ``fw_active_incidents`` is a derived copy of the summary of every incident
that is still active (open, acknowledged, reprocessing), one row per incident in a key-value
table, so that what on-call looks at — the open incidents, their counts — costs what is live,
not what the log has accumulated. An incident that is resolved or ignored is deleted from it;
one that reopens is written back. Rows are always recomputed from the log (never patched from
the transition alone), so a refresh that runs twice, late or after a crash writes the same row.

Two paths keep it current:

* **after every append** (:func:`refresh`, called by the :class:`~.incident_log.Journal`): the
  writer recomputes the incidents it just wrote, so its own reads see its own action;
* **following the feed** (:class:`FeedFollower`, run by the engine every tick): two processes that
  write the same incident at the same moment may each read the log before the other's row is
  visible, and the later refresh can then write the older view. The engine re-derives every
  incident the feed shows changed since its position (minus an overlap), which settles such
  a race within a tick.
"""

from __future__ import annotations

from collections.abc import Iterable

from clickhouse_connect.driver.client import Client

from fulfillwatch.incident_engine.incidents import log_reads
from fulfillwatch.incident_engine.model.transitions import ACTIVE_STATES
from fulfillwatch.incident_engine.schema import ACTIVE_INCIDENTS_TABLE

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
    if rows:
        client.insert(ACTIVE_INCIDENTS_TABLE, rows, column_names=_COLUMNS)
    closed = sorted(set(ids) - {row[0] for row in rows})
    if closed:
        client.command(
            f"DELETE FROM {ACTIVE_INCIDENTS_TABLE} WHERE incident_id IN {{ids:Array(String)}}",
            parameters={"ids": closed},
        )


def rebuild(client: Client) -> int:
    """Derive the whole table from the log (a migration, or a follower without a position);
    returns the feed position it is current with."""
    position = log_reads.latest_seq(client)
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

    def catch_up(self, client: Client, refreshed: set[int] | frozenset[int] = frozenset()) -> int:
        """Refresh what changed, except the rows in ``refreshed`` (their writer refreshed
        them); return the new position. Without a position: rebuild."""
        if self.position is None:
            self.position = rebuild(client)
            return self.position
        oldest = max(0, self.position - OVERLAP_NS)
        rows = log_reads.changes_after(client, oldest)
        seen = self._seen | refreshed
        refresh(client, {incident_id for seq, incident_id in rows if seq not in seen})
        self.position = max([self.position, *(seq for seq, _ in rows)])
        keep_from = self.position - OVERLAP_NS
        self._seen = {seq for seq, _ in rows if seq > keep_from}
        return self.position
