"""Group-commit writer: every request waits for its own rows to be stored, inserts are shared.

An OTLP sender is told 200 only after its spans are in the store, yet one insert per request
would pay ClickHouse's fixed per-insert cost (milliseconds) for every 512-span batch. So
requests queue their :class:`~.signals.SignalBatch` (already an Arrow table, built off the event
loop), one insert thread takes everything queued at once, and each request's future completes
when the insert that carried it committed. Under load, inserts grow by themselves; idle, a lone
request is inserted at once.

One bad request must never fail the others it shares an insert with. Values are checked at
decode and typed when the table is built, per request; if a shared insert still fails, its
requests are inserted one by one, so that only a request whose own content the store refuses
fails — with :class:`RejectedBatch` (HTTP 400: do not retry) — while a store that cannot write
at all fails them with :class:`~.store.StoreUnavailable` (HTTP 503: retry later).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyarrow as pa
from clickhouse_connect.driver.exceptions import ClickHouseError, DatabaseError

from .signals import MAX_ROWS_PER_INSERT, SignalBatch, insert_tables
from .store import Store, StoreUnavailable

_logger = logging.getLogger("fulfillwatch.collector_processor")

#: ClickHouse error codes meaning "these rows cannot be stored" rather than "the store cannot
#: store now": parse and conversion errors, values out of range, malformed Arrow.
_CONTENT_ERROR_CODES = frozenset({6, 27, 36, 41, 53, 69, 70, 72, 117, 321, 407})
_TOO_MANY_PARTITIONS = "Too many partitions for single INSERT block"


class RejectedBatch(Exception):
    """The store refused this request's own rows; retrying them cannot help."""


@dataclass(frozen=True)
class StoredBatch:
    """What was just committed, for listeners such as the engine's wake-up."""

    rows: int
    results: int
    urgent: int


@dataclass
class _Pending:
    batch: SignalBatch
    done: asyncio.Future[None]


def is_content_error(error: BaseException) -> bool:
    """Whether an insert failed because of the rows themselves (not the store's condition)."""
    if isinstance(error, (pa.ArrowException, OverflowError, UnicodeError)):
        return True
    if isinstance(error, DatabaseError):
        code = getattr(error, "code", None)
        return code in _CONTENT_ERROR_CODES or (code == 252 and _TOO_MANY_PARTITIONS in str(error))
    return False


class SignalWriter:
    """Writes signal batches through one store client from one dedicated thread."""

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
        while self._queue:
            await self._commit(self._take())
        self._thread.shutdown(wait=True)

    async def write(self, batch: SignalBatch) -> None:
        """Return once ``batch`` is stored; raise :class:`~.store.StoreUnavailable` (retry later)
        or :class:`RejectedBatch` (never) if it was not."""
        if not batch.rows:
            return
        if self._wakeup is None:
            raise RuntimeError("SignalWriter.start() was not called")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(batch, done))
        self._wakeup.set()
        await done

    def _take(self) -> list[_Pending]:
        taken: list[_Pending] = []
        rows = 0
        while self._queue and (not taken or rows + self._queue[0].batch.rows <= self._max_rows):
            pending = self._queue.popleft()
            taken.append(pending)
            rows += pending.batch.rows
        return taken

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                await self._commit(self._take())

    async def _commit(self, group: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._thread, self._insert, [p.batch for p in group])
            outcomes: list[BaseException | None] = [None] * len(group)
        except Exception as exc:  # noqa: BLE001 - any failure means "not stored": find out whose rows
            if len(group) == 1:
                outcomes = [self._classify(exc)]
            else:
                outcomes = [await self._insert_alone(pending) for pending in group]
        stored = [pending for pending, error in zip(group, outcomes, strict=True) if error is None]
        for pending, error in zip(group, outcomes, strict=True):
            if pending.done.done():
                continue  # the request went away (the client disconnected)
            if error is None:
                pending.done.set_result(None)
            else:
                pending.done.set_exception(error)
        if stored and self._on_stored is not None:
            self._on_stored(
                StoredBatch(
                    rows=sum(p.batch.rows for p in stored),
                    results=sum(p.batch.results for p in stored),
                    urgent=sum(p.batch.urgent for p in stored),
                )
            )

    async def _insert_alone(self, pending: _Pending) -> BaseException | None:
        try:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._insert, [pending.batch])
        except Exception as exc:  # noqa: BLE001 - classified: the request's own rows, or the store
            return self._classify(exc)
        return None

    def _classify(self, error: BaseException) -> BaseException:
        if is_content_error(error):
            _logger.warning("the store refused a request's rows (answered 400): %s", _first_line(error))
            return RejectedBatch(f"the store refused these spans: {_first_line(error)}")
        if isinstance(error, StoreUnavailable):
            return error
        _logger.warning("insert failed, answering 503: %s", _first_line(error))
        return StoreUnavailable(f"the store refused the write: {_first_line(error)}")

    def _insert(self, batches: Sequence[SignalBatch]) -> None:
        try:
            insert_tables(self._store.client("writer"), [batch.table for batch in batches], self._max_rows)
        except (ClickHouseError, OSError) as exc:
            self._store.discard("writer")
            raise exc
        self.inserts += 1


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:300]
