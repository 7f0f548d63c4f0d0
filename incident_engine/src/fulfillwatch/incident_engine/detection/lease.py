"""The engine lease: one evaluating engine per store, others wait as standbys.

On a ClickHouse server nothing stops a second ``fulfillwatch engine`` from starting (a second
replica, a deploy that overlaps the old one). The lease is a row in ``fw_engine_state``
(holder, expiry) that the holder renews every tick; another engine evaluates only once the
lease has expired, and then takes it over. ClickHouse has no compare-and-set, so two standbys
that take over at the same moment both write a claim; each waits ``settle_s`` and reads the
claims back, and the one stored last (the highest version) wins, for both of them alike.

The lease keeps the work single; it is not what keeps the result right. Should two engines
evaluate at once anyway, their transitions have deterministic ids and the incident log is a
``ReplacingMergeTree`` on them (see the schema): the second copy of a transition is invisible.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from fulfillwatch.collector_processor.store import Store
from fulfillwatch.incident_engine.detection.engine_state import Clock, read_state, store_now, write_state
from fulfillwatch.incident_engine.schema import EPOCH

_logger = logging.getLogger("fulfillwatch.lease")
_KEY = "engine_lease"


class EngineLease:
    """The lease as seen by one engine (``holder``)."""

    def __init__(
        self,
        store: Store,
        holder: str,
        duration_s: float = 30.0,
        settle_s: float = 1.0,
        clock: Clock = store_now,
    ) -> None:
        self._store = store
        self.holder = holder
        self._duration = timedelta(seconds=duration_s)
        self._settle_s = settle_s
        self._clock = clock
        self.held = False

    def _now(self) -> datetime:
        # The store's clock, not this machine's: every engine compares against the same one.
        return self._clock(self._store.client("lease"))

    def current(self) -> tuple[str, datetime] | None:
        """The stored holder and expiry, if any."""
        state = read_state(self._store.client("lease"), _KEY)
        if state is None:
            return None
        return str(state["holder"]), datetime.fromisoformat(state["expires_at"])

    def _claim(self, now: datetime, expires: datetime) -> None:
        write_state(
            self._store.client("lease"),
            _KEY,
            {"holder": self.holder, "expires_at": expires.isoformat()},
            now,
        )

    def hold(self) -> bool:
        """Renew the lease if this engine holds it, take it over if it expired; whether it is
        held now (call before every evaluation)."""
        now = self._now()
        current = self.current()
        other_is_live = current is not None and current[0] != self.holder and current[1] > now
        if other_is_live:
            if self.held:
                _logger.warning("engine lease taken over by %s; standing by", current[0])  # type: ignore[index]
            self.held = False
            return False
        self._claim(now, now + self._duration)
        if not self.held:
            if self._settle_s:
                time.sleep(self._settle_s)  # let a simultaneous claim land, then read who won
            winner = self.current()
            self.held = winner is not None and winner[0] == self.holder
            if self.held:
                _logger.info("engine lease acquired by %s", self.holder)
        return self.held

    def release(self) -> None:
        """Give the lease up at shutdown, so that a standby (or a restart) takes over at once."""
        if self.held:
            current = self.current()
            if current is not None and current[0] == self.holder:
                self._claim(self._now(), EPOCH)
            self.held = False
