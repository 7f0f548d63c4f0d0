"""The expectations waiting for a result: ``fw_open_expectations``, and the engine's copy of it.

An expectation is open from a receipt (or a skipped result) until a success or its deadline
(see :mod:`.window`). The key-value table is what survives a restart; the engine decides from a
copy of its keys in memory (its size is the number of open expectations, a few thousand at 10 M
stored), because it is the table's only writer: after each window it writes the table, then
the copy (:class:`~..live_keys.KeyCopy`). The copy is read from the table at start, after a
burst (whose waiting expectations enter the table in the store), and whenever the engine
forgets it (a failed tick, or another engine leading for a while).

The table may hold an expectation that is no longer open — a tick that stopped between its
writes leaves it — but never lacks one that is: the engine evaluates what is open when its
deadline comes, and one more evaluation finds a settled expectation settled.
"""

from __future__ import annotations

from collections.abc import Set

from clickhouse_connect.driver.client import Client

from fulfillwatch.collector_processor.store import insert_rows
from fulfillwatch.incident_engine.detection.window import Decisions, Window, enter_waiting_of_burst
from fulfillwatch.incident_engine.live_keys import KeyCopy
from fulfillwatch.incident_engine.schema import OPEN_EXPECTATIONS_TABLE

#: Keys per delete: a literal list of tens of thousands made one statement take a minute
#: (measured at 30,000 with a key-value read).
_BATCH = 2_000


class OpenSet:
    """``fw_open_expectations`` and a copy of its keys (incident ids) in memory."""

    def __init__(self) -> None:
        self._copy = KeyCopy(OPEN_EXPECTATIONS_TABLE)

    def ids(self, client: Client) -> Set[str]:
        """The open expectations' incident ids (read from the table when not known)."""
        return self._copy.ids(client)

    def forget(self) -> None:
        """Read the table again when next asked (another writer may have changed it)."""
        self._copy.forget()

    def enter(self, client: Client, decisions: Decisions) -> None:
        """Open what the window saw waiting (not for a burst: :meth:`leave` enters those). It may
        run beside the append of the window's transitions: an expectation open a moment early
        costs at most an evaluation that finds nothing to do; it must be stored before the
        watermarks move past the window, or its deadline would pass unseen."""
        if not decisions.waiting:
            return
        with self._copy.writing(added=[incident_id for incident_id, _ in decisions.waiting]):
            insert_rows(client, OPEN_EXPECTATIONS_TABLE, decisions.waiting, ["incident_id", "due_at"])

    def leave(self, client: Client, window: Window, decisions: Decisions) -> None:
        """Close what the window settled (expectations with a success, and those whose deadline
        it evaluated and found past), once the window's transitions are stored: an expectation
        closed before its incident was stored would never be looked at again. One the window
        also saw waiting stays open (a later receipt moved its deadline). Beside the
        watermarks' write: left behind by a crash, it only costs an evaluation at its deadline
        that finds it settled.

        For a burst, whose waiting expectations :meth:`enter` did not see, they enter here,
        after the settled ones left, in the store (the copy is read again)."""
        staying = {incident_id for incident_id, _ in decisions.waiting or ()}
        leaving = [incident_id for incident_id in decisions.settled if incident_id not in staying]
        with self._copy.writing(removed=leaving):
            for start in range(0, len(leaving), _BATCH):
                # By key: a key-value table deletes a list of keys at once, but scans for a subquery.
                client.command(
                    f"DELETE FROM {OPEN_EXPECTATIONS_TABLE} WHERE incident_id IN {{ids:Array(String)}}",
                    parameters={"ids": leaving[start : start + _BATCH]},
                )
        if decisions.waiting is None:
            self._copy.forget()  # read again: the burst's waiting ones enter in the store
            enter_waiting_of_burst(client, window)
