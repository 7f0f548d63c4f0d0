"""The engine's persisted state: evaluation watermarks, the heartbeat, importer positions.

Watermarks are written after the transitions of a tick, so a crash between the two only makes
the next tick look at the same window again — which plans no new transitions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from clickhouse_connect.driver.client import Client

from fulfillwatch.collector_processor.store import insert_rows
from fulfillwatch.incident_engine.incidents.incident_log import next_seq
from fulfillwatch.incident_engine.schema import ENGINE_STATE_TABLE, EPOCH

#: A clock of the engine and the lease. In production the store's, so that every engine agrees on
#: "now" and signals are stamped by the same clock; tests pass a controllable one.
Clock = Callable[[Client], datetime]


def store_now(client: Client) -> datetime:
    """The store's current time."""
    now: datetime = client.query("SELECT now64(6, 'UTC')").result_rows[0][0]
    return now


def machine_now(_client: Client) -> datetime:
    """This machine's current time: the store's own when it is embedded (chDB runs in this
    process and stamps ``ingested_at`` from the same clock), without a statement per tick."""
    return datetime.now(timezone.utc)


_WATERMARKS = "watermarks"
#: The Stripe reconciler's status (``sources/stripe_events``), read by health and the silence watch.
STRIPE_STATUS_KEY = "stripe_status"
#: The alert sender's position in the log's feed (``delivery/alert_sender``; set by a migration).
ALERT_POSITION_KEY = "alert_feed"
_HEARTBEAT = "heartbeat"


@dataclass(frozen=True)
class Watermarks:
    """Everything stored up to ``ingested`` and every deadline up to ``due`` was evaluated."""

    ingested: datetime = EPOCH
    due: datetime = EPOCH


@dataclass(frozen=True)
class Heartbeat:
    """Proof of life of the engine, written by every tick."""

    engine_id: str
    at: datetime
    tick_ms: float
    expectations: int
    transitions: int
    lag_s: float  # now - ingest watermark after the tick

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {**asdict(self), "at": self.at.isoformat()}


def read_state(client: Client, key: str) -> dict[str, Any] | None:
    """The latest JSON value stored under ``key``."""
    rows = client.query(
        f"SELECT value FROM {ENGINE_STATE_TABLE} WHERE key = {{key:String}}",
        parameters={"key": key},
    ).result_rows
    return json.loads(rows[0][0]) if rows else None


def read_states(client: Client, keys: list[str]) -> dict[str, dict[str, Any]]:
    """The latest JSON value of each of ``keys`` that has one (one query)."""
    rows = client.query(
        f"SELECT key, value FROM {ENGINE_STATE_TABLE} WHERE key IN {{keys:Array(String)}}",
        parameters={"keys": keys},
    ).result_rows
    return {str(key): json.loads(value) for key, value in rows}


def write_state(client: Client, key: str, value: dict[str, Any], at: datetime) -> None:
    """Store a new JSON value under ``key`` (the latest write wins)."""
    write_states(client, [(key, value, at)])


def write_states(client: Client, entries: list[tuple[str, dict[str, Any], datetime]]) -> None:
    """Store several ``(key, value, at)`` in one insert (each insert costs milliseconds)."""
    # A key-value table: the latest write of a key wins, whatever its stamps (a watermark moved
    # back on purpose must win over a later-stamped older one). ``version`` orders the writes for
    # whoever reads the table by hand.
    insert_rows(
        client,
        ENGINE_STATE_TABLE,
        [[key, json.dumps(value), next_seq(), at] for key, value, at in entries],
        ["key", "value", "version", "updated_at"],
    )


def load_watermarks(client: Client) -> Watermarks:
    """The stored watermarks (epoch when the engine never ran: evaluate everything)."""
    value = read_state(client, _WATERMARKS)
    if value is None:
        return Watermarks()
    return Watermarks(
        ingested=datetime.fromisoformat(value["ingested"]),
        due=datetime.fromisoformat(value["due"]),
    )


def _watermarks_entry(marks: Watermarks) -> tuple[str, dict[str, Any], datetime]:
    return _WATERMARKS, {"ingested": marks.ingested.isoformat(), "due": marks.due.isoformat()}, marks.ingested


def save_watermarks(client: Client, marks: Watermarks) -> None:
    """Persist the watermarks."""
    write_states(client, [_watermarks_entry(marks)])


def save_heartbeat(client: Client, beat: Heartbeat) -> None:
    """Persist the heartbeat."""
    write_state(client, _HEARTBEAT, beat.to_json(), beat.at)


def save_tick(client: Client, marks: Watermarks, *, beat: Heartbeat, active_incidents_position: int | None) -> None:
    """Persist a tick's new watermarks, its heartbeat and — when it moved — the feed position of
    ``fw_active_incidents``, together (one insert)."""
    entries = [_watermarks_entry(marks), (_HEARTBEAT, beat.to_json(), beat.at)]
    if active_incidents_position is not None:
        entries.append(_active_incidents_entry(active_incidents_position))
    write_states(client, entries)


def load_heartbeat(client: Client) -> Heartbeat | None:
    """The latest heartbeat, if the engine ever ran."""
    value = read_state(client, _HEARTBEAT)
    if value is None:
        return None
    return Heartbeat(**{**value, "at": datetime.fromisoformat(value["at"])})


_ACTIVE_INCIDENTS_KEY = "active_incidents_feed"


def load_active_incidents_position(client: Client) -> int | None:
    """The feed ``seq`` up to which ``fw_active_incidents`` is known current (``None``: never)."""
    stored = read_state(client, _ACTIVE_INCIDENTS_KEY)
    return int(stored["seq"]) if stored else None


def _active_incidents_entry(seq: int) -> tuple[str, dict[str, Any], datetime]:
    return _ACTIVE_INCIDENTS_KEY, {"seq": seq}, datetime.now(timezone.utc)


def save_active_incidents_position(client: Client, seq: int) -> None:
    """Record that ``fw_active_incidents`` is current with the feed up to ``seq``."""
    write_states(client, [_active_incidents_entry(seq)])
