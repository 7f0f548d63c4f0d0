"""The expectations waiting for a result: ``fw_open_expectations``, and the engine's copy of it.

An expectation is open from a receipt (or a skipped result) until a success or its deadline (see
:mod:`.window`). The key-value table is what survives a restart; the engine decides from a copy
of it in memory (its size is the number of open expectations, a few thousand at 10 M stored),
because it is the table's only writer: after each window it writes the table, then the copy.
Each row holds the expectation's deadlines still to come (:class:`~.window.Waiting`), and the
copy keeps them in order, so the open expectations falling due in a window are found without a
statement (:meth:`OpenSet.falling_due`). The copy is read from the table at start, after a burst
(whose waiting expectations enter the table in the store), and whenever the engine forgets it (a
failed tick, or another engine leading for a while).

The table may hold an expectation that is no longer open — a tick that stopped between its
writes leaves it — but never lacks one that is: the engine evaluates what is open when its
deadline comes, and one more evaluation finds a settled expectation settled.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Set
from datetime import datetime, timedelta

from clickhouse_connect.driver.client import Client

from fulfillwatch.collector_processor.store import insert_rows
from fulfillwatch.incident_engine.detection.window import Decisions, Waiting, Window, enter_waiting_of_burst
from fulfillwatch.incident_engine.schema import OPEN_EXPECTATIONS_TABLE

#: Keys per delete: a literal list of tens of thousands made one statement take a minute
#: (measured at 30,000 with a key-value read).
_BATCH = 2_000


class _Copy:
    """The table's rows by incident id, and their deadlines in order."""

    def __init__(self, rows: Iterable[Waiting], default_timeout: timedelta) -> None:
        self.timeout = default_timeout
        self.rows = {row.incident_id: row for row in rows}
        self.by_deadline = sorted((row.falls_due(default_timeout), row.incident_id) for row in self.rows.values())

    def put(self, row: Waiting) -> None:
        self.remove(row.incident_id)
        self.rows[row.incident_id] = row
        bisect.insort(self.by_deadline, (row.falls_due(self.timeout), row.incident_id))

    def remove(self, incident_id: str) -> None:
        row = self.rows.pop(incident_id, None)
        if row is not None:
            entry = (row.falls_due(self.timeout), incident_id)
            del self.by_deadline[bisect.bisect_left(self.by_deadline, entry)]

    def due_in(self, after: datetime, until: datetime) -> list[Waiting]:
        last = "\U0010ffff"  # after every incident id
        start = bisect.bisect_right(self.by_deadline, (after, last))
        end = bisect.bisect_right(self.by_deadline, (until, last))
        return [self.rows[incident_id] for _, incident_id in self.by_deadline[start:end]]


class OpenSet:
    """``fw_open_expectations`` and a copy of it in memory. ``default_timeout``: when a skipped
    result without a receipt falls due (the engine's setting)."""

    def __init__(self, default_timeout: timedelta) -> None:
        self._default_timeout = default_timeout
        self._copy: _Copy | None = None

    def _known(self, client: Client) -> _Copy:
        if self._copy is None:
            rows = client.query(f"SELECT {', '.join(Waiting._fields)} FROM {OPEN_EXPECTATIONS_TABLE}").result_rows
            self._copy = _Copy((Waiting(*row) for row in rows), self._default_timeout)
        return self._copy

    def ids(self, client: Client) -> Set[str]:
        """The open expectations' incident ids (read from the table when not known)."""
        return self._known(client).rows.keys()

    def falling_due(self, client: Client, window: Window) -> list[Waiting]:
        """The open expectations whose first deadline is in the window's deadline range."""
        return self._known(client).due_in(window.due_since, window.due_until)

    def forget(self) -> None:
        """Read the table again when next asked (another writer may have changed it)."""
        self._copy = None

    def enter(self, client: Client, window: Window, decisions: Decisions) -> None:
        """Open what the window saw waiting (not for a burst: :meth:`leave` enters those),
        keeping the deadlines still to come of those already open (:meth:`~.Waiting.keeping`).
        It may run beside the append of the window's transitions: an expectation open a moment
        early costs at most an evaluation that finds nothing to do; it must be stored before
        the watermarks move past the window, or its deadline would pass unseen."""
        if not decisions.waiting:
            return
        copy, self._copy = self._known(client), None  # known again once the write succeeded
        rows = [waiting.keeping(copy.rows.get(waiting.incident_id), window) for waiting in decisions.waiting]
        insert_rows(client, OPEN_EXPECTATIONS_TABLE, rows, Waiting._fields)
        for row in rows:
            copy.put(row)
        self._copy = copy

    def leave(self, client: Client, window: Window, decisions: Decisions) -> None:
        """Close what the window settled (expectations with a success, and those whose deadline
        it evaluated), once the window's transitions are stored: an expectation closed before
        its incident was stored would never be looked at again. One the window also saw waiting
        stays open (a later receipt moved its deadline). Beside the watermarks' write: left
        behind by a crash, it only costs an evaluation at its deadline that finds it settled.

        For a burst, whose waiting expectations :meth:`enter` did not see, they enter here,
        after the settled ones left, in the store (the copy is read again)."""
        staying = {waiting.incident_id for waiting in decisions.waiting or ()}
        leaving = [incident_id for incident_id in decisions.settled if incident_id not in staying]
        copy, self._copy = self._copy, None
        for start in range(0, len(leaving), _BATCH):
            # By key: a key-value table deletes a list of keys at once, but scans for a subquery.
            client.command(
                f"DELETE FROM {OPEN_EXPECTATIONS_TABLE} WHERE incident_id IN {{ids:Array(String)}}",
                parameters={"ids": leaving[start : start + _BATCH]},
            )
        if decisions.waiting is None:
            enter_waiting_of_burst(client, window)
        elif copy is not None:
            for incident_id in leaving:
                copy.remove(incident_id)
            self._copy = copy
