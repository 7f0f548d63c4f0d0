"""In-memory copies of the keys of the live set's key-value tables.

``fw_open_expectations`` and ``fw_active_incidents`` are what survives a restart; the engine
decides from copies of their keys (incident ids) in memory, whose size is the live set's, not
the history's. A copy is read from its table when first asked and again after it is forgotten.
Its owner makes every write of the table inside :meth:`KeyCopy.writing`, so the copy follows
each write that succeeded and is read again after one that failed (which may have been applied).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Set
from contextlib import contextmanager

from clickhouse_connect.driver.client import Client

from fulfillwatch.incident_engine.schema import incident_ids_in


class KeyCopy:
    """The incident ids one key-value table holds, in memory.

    ``lock`` is held while the copy is read, forgotten or written (with the table's write), so
    that a copy shared by several writers never misses a write nor sees two in another order;
    re-entrant, so that its owner can hold it around more than one step."""

    def __init__(self, table: str, lock: threading.RLock | None = None) -> None:
        self.table = table
        self._lock = lock or threading.RLock()
        self._ids: set[str] | None = None

    def ids(self, client: Client) -> Set[str]:
        """The ids (the live copy: later writes show in it), read from the table when not known."""
        with self._lock:
            if self._ids is None:
                self._ids = incident_ids_in(client, self.table)
            return self._ids

    def forget(self) -> None:
        """Read the table again when next asked (another writer may have changed it)."""
        with self._lock:
            self._ids = None

    @contextmanager
    def writing(self, added: Iterable[str] = (), removed: Iterable[str] = ()) -> Iterator[None]:
        """Around a write of the table that adds ``added`` and removes ``removed``: the copy
        follows it when it succeeds and is forgotten when it fails."""
        with self._lock:
            try:
                yield
            except BaseException:
                self._ids = None  # a write that failed may have been applied
                raise
            if self._ids is not None:
                self._ids.update(added)
                self._ids.difference_update(removed)
