"""Whether this process can do its job now: what ``/readyz`` answers.

* **store writable** — a small insert every ``probe_interval_s`` into ``fw_write_probes``, a
  MergeTree table, so that it writes a part as the data's inserts do (a read succeeds on a full
  disk, and so does a write to a key-value table: RocksDB's write-ahead log). Probing on a
  timer, not per request, keeps a flood of probes from becoming a flood of inserts;
* **engine fresh** — where the engine runs, its last completed tick is recent;
* **not throttling** — where ingest runs, no upload was refused for lack of budget lately.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from datetime import datetime, timezone

from fulfillwatch.collector_processor.ingest_gate import ByteBudget
from fulfillwatch.collector_processor.store import Store, insert_rows
from fulfillwatch.incident_engine.schema import WRITE_PROBES_TABLE

_logger = logging.getLogger("fulfillwatch.readiness")
_COLUMNS = ["process", "at"]


class Readiness:
    """The readiness checks of one process."""

    def __init__(
        self,
        store: Store,
        *,
        engine_last_tick: Callable[[], float | None] | None = None,
        budget: ByteBudget | None = None,
        stale_after_s: float = 60.0,
        probe_interval_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._engine_last_tick = engine_last_tick
        self._budget = budget
        self._stale_after_s = stale_after_s
        self._interval = probe_interval_s
        self._clock = clock
        self._last_write_ok: float | None = None
        self._last_error = ""
        self._key = f"{os.uname().nodename}:{os.getpid()}"

    def probe(self) -> None:
        """Write the probe row now (blocking; the loop runs it in a thread)."""
        try:
            insert_rows(
                self._store.client("readiness"), WRITE_PROBES_TABLE, [[self._key, datetime.now(timezone.utc)]], _COLUMNS
            )
        except Exception as exc:  # noqa: BLE001 - any failure means "not writable"
            self._store.discard("readiness")
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if message != self._last_error:
                _logger.warning("the store is not writable: %s", message[:300])
            self._last_error = message
            return
        if self._last_error:
            _logger.info("the store is writable again")
        self._last_error = ""
        self._last_write_ok = self._clock()

    async def run(self, stop: asyncio.Event) -> None:
        """Probe until ``stop`` is set."""
        while not stop.is_set():
            await asyncio.to_thread(self.probe)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._interval)

    def failing(self) -> list[str]:
        """The checks that fail now (empty: ready)."""
        now = self._clock()
        failing = []
        fresh = max(self._stale_after_s, 3 * self._interval)
        if self._last_write_ok is None or now - self._last_write_ok > fresh or self._last_error:
            failing.append("store_writable")
        if self._engine_last_tick is not None:
            last = self._engine_last_tick()
            if last is None or now - last > self._stale_after_s:
                failing.append("engine_fresh")
        if self._budget is not None and self._budget.throttled_within(5.0):
            failing.append("not_throttling")
        return failing
