"""Incident ids of expectations known in Python (the id is derived in SQL, and only there)."""

from __future__ import annotations

from collections.abc import Sequence

from clickhouse_connect.driver.client import Client

from fulfillwatch.collector_processor.identity import ExpectationIdentity
from fulfillwatch.incident_engine.schema import INCIDENT_ID_SQL

_IDS = f"""
    SELECT {INCIDENT_ID_SQL} FROM (
        SELECT key.1 AS project, key.2 AS stripe_event_id, key.3 AS effect, n
        FROM (SELECT arrayJoin(arrayZip({{keys:Array(Tuple(String, String, String))}},
                                         range(length({{keys:Array(Tuple(String, String, String))}})))) AS pair,
                     pair.1 AS key, pair.2 AS n)
    ) ORDER BY n
"""


def incident_ids(client: Client, identities: Sequence[ExpectationIdentity]) -> list[str]:
    """The incident id of each identity, in order (``INCIDENT_ID_SQL``; one query, none when empty)."""
    if not identities:
        return []
    keys = [(i.project, i.stripe_event_id, i.effect) for i in identities]
    return [str(row[0]) for row in client.query(_IDS, parameters={"keys": keys}).result_rows]
