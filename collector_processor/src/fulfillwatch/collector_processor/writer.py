"""Group-commit writer: every request waits for its own rows to be stored, inserts are shared.

An OTLP sender is told 200 only after its spans are in the store (DESIGN.md §8), yet one insert
per request would pay ClickHouse's fixed per-insert cost (milliseconds) for every 512-span
batch. So requests queue their signals, one insert thread takes everything queued at once,
and each request's future completes when the insert that carried it committed. Under load,
batches grow by themselves; idle, a lone request is inserted at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from clickhouse_connect.driver.exceptions import ClickHouseError

from fulfillwatch.instrumentation.vocabulary import OUTCOME_FAILURE

from .signals import RESULT, Signal, insert_signals
from .store import Store, StoreUnavailable

_logger = logging.getLogger("fulfillwatch.collector_processor")

#: Upper bound of rows in one insert (bounds memory of one Arrow block).
MAX_ROWS_PER_INSERT = 100_000


@dataclass(frozen=True)
class StoredBatch:
    """What was just committed, for listeners such as the engine's wake-up."""

    rows: int
    results: int
    #: Results someone is waiting for: failures (open an incident at once) and results of a
    #: reprocess (resolve it at once). Routine successes can wait for the next evaluation.
    urgent: int


@dataclass
class _Pending:
    signals: Sequence[Signal]
    done: asyncio.Future[None]


class SignalWriter:
    """Writes signals through one store client from one dedicated thread."""

    def __init__(
        self,
        store: Store,
        *,
        on_stored: Callable[[StoredBatch], None] | None = None,
        max_rows_per_insert: int = MAX_ROWS_PER_INSERT,
    ) -> None:
        self._store = store
        self._on_stored = on_stored
        self._max_rows = max_rows_per_insert
        self._queue: deque[_Pending] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        # One thread: the client and chDB's insert path are used by one caller at a time.
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="fw-writer")
        self.inserts = 0

    async def start(self) -> None:
        """Start the commit loop on the running event loop."""
        self._wakeup = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="fulfillwatch-writer")

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._queue:
            await self._commit(self._take())
        self._thread.shutdown(wait=True)

    async def write(self, signals: Sequence[Signal]) -> None:
        """Return once ``signals`` are stored; raise :class:`StoreUnavailable` if they were not."""
        if not signals:
            return
        if self._wakeup is None:
            raise RuntimeError("SignalWriter.start() was not called")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(signals, done))
        self._wakeup.set()
        await done

    def _take(self) -> list[_Pending]:
        taken: list[_Pending] = []
        rows = 0
        while self._queue and (not taken or rows + len(self._queue[0].signals) <= self._max_rows):
            pending = self._queue.popleft()
            taken.append(pending)
            rows += len(pending.signals)
        return taken

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                await self._commit(self._take())

    async def _commit(self, batch: list[_Pending]) -> None:
        signals = [signal for pending in batch for signal in pending.signals]
        loop = asyncio.get_running_loop()
        error: BaseException | None = None
        try:
            await loop.run_in_executor(self._thread, self._insert, signals)
        except StoreUnavailable as exc:
            error = exc
        except Exception as exc:  # any failure means "not stored": the sender must retry
            _logger.exception("insert of %d signals failed", len(signals))
            error = StoreUnavailable(f"the store refused the write: {exc}")
        for pending in batch:
            if pending.done.done():
                continue
            if error is None:
                pending.done.set_result(None)
            else:
                pending.done.set_exception(error)
        if error is None and self._on_stored is not None:
            results = [signal for signal in signals if signal.signal == RESULT]
            urgent = sum(1 for signal in results if signal.outcome == OUTCOME_FAILURE or signal.replay_id)
            self._on_stored(StoredBatch(rows=len(signals), results=len(results), urgent=urgent))

    def _insert(self, signals: list[Signal]) -> None:
        try:
            insert_signals(self._store.client("writer"), signals)
        except (ClickHouseError, OSError) as exc:
            self._store.discard("writer")
            raise StoreUnavailable(f"the store refused the write: {exc}") from exc
        self.inserts += 1
