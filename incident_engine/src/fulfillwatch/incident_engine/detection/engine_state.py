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

from fulfillwatch.incident_engine.incidents.incident_log import next_seq
from fulfillwatch.incident_engine.schema import ENGINE_STATE_TABLE

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
#: A clock of the engine and the lease. In production the store's, so that every engine agrees on
#: "now" and signals are stamped by the same clock; tests pass a controllable one.
Clock = Callable[[Client], datetime]


def store_now(client: Client) -> datetime:
    """The store's current time."""
    now: datetime = client.query("SELECT now64(6, 'UTC')").result_rows[0][0]
    return now


_WATERMARKS = "watermarks"
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
        f"SELECT value FROM {ENGINE_STATE_TABLE} FINAL WHERE key = {{key:String}}",
        parameters={"key": key},
    ).result_rows
    return json.loads(rows[0][0]) if rows else None


def write_state(client: Client, key: str, value: dict[str, Any], at: datetime) -> None:
    """Store a new JSON value under ``key`` (the latest write wins)."""
    # The version, not the time written, decides which row FINAL keeps: a watermark moved back
    # on purpose (a re-evaluation) must win over a later-stamped older one.
    client.insert(
        ENGINE_STATE_TABLE,
        [[key, json.dumps(value), next_seq(), at]],
        column_names=["key", "value", "version", "updated_at"],
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


def save_watermarks(client: Client, marks: Watermarks) -> None:
    """Persist the watermarks."""
    value = {"ingested": marks.ingested.isoformat(), "due": marks.due.isoformat()}
    write_state(client, _WATERMARKS, value, marks.ingested)


def save_heartbeat(client: Client, beat: Heartbeat) -> None:
    """Persist the heartbeat."""
    write_state(client, _HEARTBEAT, beat.to_json(), beat.at)


def load_heartbeat(client: Client) -> Heartbeat | None:
    """The latest heartbeat, if the engine ever ran."""
    value = read_state(client, _HEARTBEAT)
    if value is None:
        return None
    return Heartbeat(**{**value, "at": datetime.fromisoformat(value["at"])})
