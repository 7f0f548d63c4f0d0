"""The shop's SQLite databases: the app database (tenants, entitlements, processed events) and
the webhook inbox (every event received, so that a repair can find its payload)."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

#: How long a write waits for a lock before "database is locked" (short: fail, don't hang).
BUSY_TIMEOUT_S = 0.5

_APP_SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (customer_id TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entitlements (
    customer_id TEXT PRIMARY KEY REFERENCES tenants(customer_id),
    access INTEGER NOT NULL DEFAULT 0,
    credits INTEGER NOT NULL DEFAULT 0,
    plan TEXT NOT NULL DEFAULT '',
    seats INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS processed_events (
    event_id TEXT NOT NULL, effect TEXT NOT NULL, status TEXT NOT NULL,
    PRIMARY KEY (event_id, effect)
);
"""
_INBOX_SCHEMA = "CREATE TABLE IF NOT EXISTS events (event_id TEXT PRIMARY KEY, type TEXT, payload TEXT NOT NULL)"


def connect(path: Path) -> sqlite3.Connection:
    """A connection that gives up quickly on a locked database."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    return connection


def ensure_schema(app_db: Path, inbox: Path) -> None:
    """Create both databases' tables."""
    with closing(connect(app_db)) as connection:
        connection.executescript(_APP_SCHEMA)
    with closing(connect(inbox)) as connection:
        connection.execute(_INBOX_SCHEMA)


def add_tenant(app_db: Path, customer_id: str, name: str = "") -> None:
    """Create a tenant (what onboarding does; the tests do it too)."""
    with closing(connect(app_db)) as connection:
        connection.execute("INSERT OR IGNORE INTO tenants VALUES (?, ?)", (customer_id, name or customer_id))


def entitlement(app_db: Path, customer_id: str) -> dict[str, Any] | None:
    """A tenant's entitlements."""
    with closing(connect(app_db)) as connection:
        row = connection.execute(
            "SELECT access, credits, plan, seats FROM entitlements WHERE customer_id = ?", (customer_id,)
        ).fetchone()
    return dict(zip(("access", "credits", "plan", "seats"), row, strict=True)) if row else None


def store_event(inbox: Path, event: dict[str, Any]) -> None:
    """Keep a received event (idempotent on the event id)."""
    with closing(connect(inbox)) as connection:
        connection.execute(
            "INSERT OR IGNORE INTO events VALUES (?, ?, ?)", (event["id"], event["type"], json.dumps(event))
        )


def load_event(inbox: Path, event_id: str) -> dict[str, Any] | None:
    """A received event by id."""
    with closing(connect(inbox)) as connection:
        row = connection.execute("SELECT payload FROM events WHERE event_id = ?", (event_id,)).fetchone()
    return json.loads(row[0]) if row else None
