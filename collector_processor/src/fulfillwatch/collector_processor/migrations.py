"""Versioned, idempotent schema migrations, recorded in ``fw_schema_migrations``.

Each component contributes an ordered list of :class:`Migration` (the receiver its signal table,
the engine its incident log); ``apply_migrations`` runs the ones not yet recorded. Statements use
``IF NOT EXISTS`` so a migration interrupted halfway can simply run again.

Retention is not a migration: the operator may change it at any start, so
``apply_retention`` rewrites each table's TTL only when it differs from the setting.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

_logger = logging.getLogger("fulfillwatch.store")

MIGRATIONS_TABLE = "fw_schema_migrations"


#: A step of a migration: a SQL statement, or a function for work SQL alone cannot express
#: (e.g. a backfill done partition by partition). Both must be safe to run again.
Step = str | Callable[[Client], None]


@dataclass(frozen=True)
class Migration:
    """One schema step: an id unique across components, and the statements it runs."""

    id: str
    statements: tuple[Step, ...]

    @property
    def checksum(self) -> str:
        """Fingerprint of the statements, to detect a migration edited after release."""
        text = "\n;\n".join(s if isinstance(s, str) else f"{s.__module__}.{s.__qualname__}" for s in self.statements)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RetentionRule:
    """A table kept ``days`` days after the value of ``time_column``."""

    table: str
    time_column: str


def apply_migrations(client: Client, migrations: Sequence[Migration]) -> list[str]:
    """Apply the migrations not recorded yet, in order; return the ids applied now."""
    client.command(
        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} ("
        " id String, checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)"
        ") ENGINE = ReplacingMergeTree ORDER BY id"
    )
    recorded = {
        row[0]: row[1] for row in client.query(f"SELECT id, checksum FROM {MIGRATIONS_TABLE} FINAL").result_rows
    }
    applied: list[str] = []
    for migration in migrations:
        if migration.id in recorded:
            if recorded[migration.id] != migration.checksum:
                _logger.warning(
                    "migration %s changed since it was applied (checksum %s, now %s)",
                    migration.id,
                    recorded[migration.id],
                    migration.checksum,
                )
            continue
        for statement in migration.statements:
            if isinstance(statement, str):
                client.command(statement)
            else:
                statement(client)
        client.insert(
            MIGRATIONS_TABLE,
            [[migration.id, migration.checksum]],
            column_names=["id", "checksum"],
        )
        applied.append(migration.id)
        _logger.info("applied schema migration %s", migration.id)
    return applied


_TTL_CLAUSE = re.compile(r"\bTTL\s+(.+?)\s+(?:SETTINGS|$)", re.DOTALL)


def apply_retention(client: Client, rules: Iterable[RetentionRule], days: int) -> list[str]:
    """Make each table's TTL ``time_column + days``; return the tables that changed."""
    if days <= 0:
        raise ValueError(f"retention must be a positive number of days, got {days}")
    changed: list[str] = []
    for rule in rules:
        wanted = f"toDateTime({rule.time_column}) + toIntervalDay({days})"
        engine_full = client.query(
            "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = {t:String}",
            parameters={"t": rule.table},
        ).result_rows
        current = _TTL_CLAUSE.search(engine_full[0][0]) if engine_full else None
        if current is not None and current.group(1).strip() == wanted:
            continue
        client.command(f"ALTER TABLE {rule.table} MODIFY TTL {wanted}")
        changed.append(rule.table)
        _logger.info("retention of %s set to %d days", rule.table, days)
    return changed
