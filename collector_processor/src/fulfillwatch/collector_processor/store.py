"""The one storage client: clickhouse-connect, on embedded chDB or a ClickHouse server.

The DSN chooses the engine (one client library for both, see docs/ARCHITECTURE.md "Storage"):

* ``chdb:///abs/dir`` (or ``chdb://`` with a data directory; ``?database=name`` picks a
  database other than ``default``) — ClickHouse embedded in this process via chDB. A chDB
  directory is locked by one process, and one process may open one path: every component
  must then run inside ``fulfillwatch serve``.
* ``http[s]://user:password@host:8123/database`` — a ClickHouse server or cluster.

The same SQL runs on both. Each component asks for its own client (``Store.client(purpose)``),
because insert contexts and chDB streaming inserts are not shareable across threads.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from .redaction import redact_url

_logger = logging.getLogger("fulfillwatch.store")

#: Default DSN: embedded ClickHouse (chDB) in the data directory.
DEFAULT_DSN = "chdb://"
#: How long chDB's built-in allocator (jemalloc, configured from ``JE_MALLOC_CONF`` when chDB
#: is loaded) keeps freed pages before handing them back: 1 s instead of its default. ``serve``
#: runs ingest, inserts and the engine in one process, and what one had freed was still held
#: while the next needed more: under six 20 MiB batches the peak was 925-939 MiB with the
#: default, 886-901 with 1 s and 847-867 with 0 — but 0 cost ingest a quarter of its throughput
#: (docs/BENCHMARKS.md, "Misbehaving clients").
CHDB_ALLOCATOR_CONF = "dirty_decay_ms:1000"


class StoreUnavailable(RuntimeError):
    """The store could not be reached or refused a write; the caller may retry later."""


class InvalidDsn(ValueError):
    """``FULFILLWATCH_CLICKHOUSE_DSN`` is not a DSN Fulfillwatch understands."""


@dataclass(frozen=True)
class StoreLocation:
    """A parsed DSN."""

    kind: str  # "chdb" | "http"
    chdb_path: str = ""
    url: str = ""
    database: str = "default"

    @property
    def embedded(self) -> bool:
        """True for chDB, which only one process may open."""
        return self.kind == "chdb"

    def describe(self) -> str:
        """The location without credentials, for logs and health output."""
        if self.embedded:
            suffix = f"?database={self.database}" if self.database != "default" else ""
            return f"chdb://{self.chdb_path}{suffix}"
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}/{self.database}"


def parse_dsn(dsn: str, data_dir: str | os.PathLike[str] | None = None) -> StoreLocation:
    """Parse a storage DSN; ``chdb://`` alone means the data directory ``data_dir``."""
    text = dsn.strip()
    parts = urlsplit(text)
    if parts.scheme == "chdb":
        raw_path = unquote((parts.netloc or "") + (parts.path or ""))
        path = raw_path or (os.fspath(data_dir) if data_dir is not None else "")
        if not path:
            raise InvalidDsn("chdb:// needs a data directory: chdb:///path/to/dir or --data-dir")
        database = parse_qs(parts.query).get("database", ["default"])[0]
        if not database.isidentifier():
            raise InvalidDsn(f"the database name {database!r} must be letters, digits and underscores")
        return StoreLocation(kind="chdb", chdb_path=os.path.realpath(os.path.expanduser(path)), database=database)
    if parts.scheme in ("http", "https", "clickhouse", "clickhouses"):
        if not parts.hostname:
            raise InvalidDsn(f"the DSN {redact_url(text)!r} has no host")
        database = parts.path.strip("/") or "default"
        if "/" in database:
            raise InvalidDsn(f"the DSN path must be one database name, got {database!r}")
        return StoreLocation(kind="http", url=text, database=database)
    raise InvalidDsn(
        f"unsupported storage DSN {redact_url(text)!r}: use chdb:///dir (embedded) or "
        "http(s)://user:password@host:8123/database (ClickHouse server)"
    )


class Store:
    """Creates and tracks clients for one storage location."""

    def __init__(self, location: StoreLocation) -> None:
        self.location = location
        if location.embedded:
            _configure_chdb_allocator()
        self._lock = threading.Lock()
        self._clients: dict[str, Client] = {}

    def client(self, purpose: str) -> Client:
        """The client for one component (``"writer"``, ``"engine"``, ``"api"``...), created lazily.

        Raises :class:`StoreUnavailable` when the store cannot be reached.
        """
        with self._lock:
            existing = self._clients.get(purpose)
            if existing is not None:
                return existing
            created = self._connect()
            self._clients[purpose] = created
            return created

    def discard(self, purpose: str) -> None:
        """Drop a client after a connection error so the next call reconnects."""
        with self._lock:
            client = self._clients.pop(purpose, None)
        if client is not None and not self.location.embedded:
            _close_quietly(client)

    def _connect(self) -> Client:
        settings: dict[str, Any] = {}
        try:
            if self.location.embedded:
                os.makedirs(self.location.chdb_path, exist_ok=True)
                client = clickhouse_connect.get_client(interface="chdb", path=self.location.chdb_path, tz_mode="aware")
                if self.location.database != "default":
                    client.command(f"CREATE DATABASE IF NOT EXISTS `{self.location.database}`")
                    client.database = self.location.database
                return client
            if self.location.database != "default":
                _ensure_database(self.location)
            return clickhouse_connect.get_client(
                dsn=self.location.url,
                database=self.location.database,
                autogenerate_session_id=False,
                tz_mode="aware",
                settings=settings,
            )
        except (ClickHouseError, OSError) as exc:
            raise StoreUnavailable(f"cannot open {self.location.describe()}: {exc}") from exc

    def ping(self) -> bool:
        """Whether a trivial query succeeds."""
        try:
            self.client("health").query("SELECT 1")
        except (StoreUnavailable, ClickHouseError, OSError):
            self.discard("health")
            return False
        return True

    def close(self) -> None:
        """Close every client (at shutdown)."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            _close_quietly(client)


def insert_rows(client: Client, table: str, rows: Sequence[Sequence[Any]], column_names: Sequence[str]) -> None:
    """Insert ``rows`` (values in the order of ``column_names``) into ``table`` in one statement.

    The rows travel inside the statement, one JSON array per row (``JSONCompactEachRow``), and
    the store converts each value to its column's type. ``client.insert`` builds a Native block
    of the column types (read with a ``DESCRIBE TABLE``, or given) in a producer thread and, on
    chDB, hands it over through a temporary file read with ``INFILE``: for the few rows the
    engine and the API write at a time, that cost ~2.5 ms more per insert on chDB (10 vs 12.5
    ms for two rows of the incident log; the engine inserts three or four times in a tick that
    opens an incident; docs/BENCHMARKS.md). Spans, which arrive by the thousand, take the Arrow
    path of :mod:`.signals` instead."""
    if not rows:
        return
    names = ", ".join(f"`{name}`" for name in column_names)
    width = len(column_names)
    lines = []
    for row in rows:
        if len(row) != width:
            raise ValueError(f"a row for {table} has {len(row)} values for {width} columns ({names})")
        lines.append(json.dumps(list(row), default=_json_value))
    client.command(f"INSERT INTO {table} ({names}) FORMAT JSONCompactEachRow", data="\n".join(lines))


def _json_value(value: object) -> str:
    """A value JSON has no type for, as the store reads it: instants as UTC text with their
    microseconds (a naive one is taken as UTC, as the columns are), dates as ISO text."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot store a {type(value).__name__} value ({value!r:.60})")


def _configure_chdb_allocator() -> None:
    """Set :data:`CHDB_ALLOCATOR_CONF` unless the operator set ``JE_MALLOC_CONF`` (read once,
    when chDB is first loaded: too late once it is, and harmless then)."""
    if "chdb" not in sys.modules:
        os.environ.setdefault("JE_MALLOC_CONF", CHDB_ALLOCATOR_CONF)


def _ensure_database(location: StoreLocation) -> None:
    bootstrap = clickhouse_connect.get_client(dsn=location.url, database="default", autogenerate_session_id=False)
    try:
        bootstrap.command(f"CREATE DATABASE IF NOT EXISTS `{location.database}`")
    finally:
        _close_quietly(bootstrap)


def _close_quietly(client: Client) -> None:
    try:
        client.close()
    except Exception:  # closing at shutdown must not mask the real outcome
        _logger.debug("error closing a storage client", exc_info=True)
