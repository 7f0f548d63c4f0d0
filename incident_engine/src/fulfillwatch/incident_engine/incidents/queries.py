"""Read side of the API: incident lists, incident timelines, the signals of an event.

Current incident state is derived from the log on every read (``argMax(..., seq)`` over
``FINAL`` rows), never stored separately, so it cannot disagree with the audit trail.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from fulfillwatch.collector_processor.identity import ExpectationIdentity, display_effect_sql
from fulfillwatch.collector_processor.signals import SIGNALS_TABLE
from fulfillwatch.incident_engine.incidents.records import IncidentSummary, LogEntry, SignalRecord
from fulfillwatch.incident_engine.model.transitions import State, TransitionType
from fulfillwatch.incident_engine.schema import CURRENT_KIND_SQL, CURRENT_STATE_SQL, INCIDENT_LOG_TABLE

# Aliases differ from column names on purpose: ClickHouse resolves aliases before columns, and
# WHERE must see the stored columns while HAVING sees the derived current state.
_SUMMARY = f"""
    SELECT
        incident_id AS id,
        {CURRENT_STATE_SQL} AS current_state,
        {CURRENT_KIND_SQL} AS current_kind,
        any(project) AS project_name,
        any(stripe_event_id) AS event_id,
        any(event_type) AS type,
        any(effect) AS stored_effect,
        any(service) AS service_name,
        min(at) AS opened_at,
        maxIf(at, transition != 'alert_attempt') AS updated_at,
        argMaxIf(reason, seq, transition NOT IN ('note', 'callback_attempt', 'alert_attempt')) AS last_reason,
        argMaxIf(replay_id, seq, transition = 'reprocess_requested') AS last_replay_id
    FROM {INCIDENT_LOG_TABLE} FINAL
    WHERE __WHERE__
    GROUP BY incident_id
    HAVING __HAVING__
"""
_PAGE = """
    SELECT *, count() OVER () AS total FROM (__SUMMARY__)
    ORDER BY updated_at DESC, id
    LIMIT {limit:UInt32} OFFSET {offset:UInt32}
"""


def summary_sql(where: str, having: str) -> str:
    """The per-incident summary query with the given WHERE (stored columns) and HAVING
    (derived: ``current_state``, ``current_kind``, ``opened_at``...) conditions."""
    return _SUMMARY.replace("__WHERE__", where).replace("__HAVING__", having)


@dataclass(frozen=True)
class IncidentFilter:
    """Filters of ``GET /api/incidents`` (all optional)."""

    states: tuple[str, ...] = ()  # any of these current states
    kind: str | None = None
    project: str | None = None
    event_type: str | None = None
    effect: str | None = None  # display form
    service: str | None = None
    stripe_event_id: str | None = None
    incident_ids: tuple[str, ...] = ()
    opened_since: datetime | None = None
    opened_until: datetime | None = None

    def clauses(self) -> tuple[str, str, dict[str, Any]]:
        """SQL for WHERE (immutable columns), HAVING (derived state) and the parameters."""
        where, having = ["1"], ["1"]
        params: dict[str, Any] = {}
        if self.project:
            where.append("project = {project:String}")
            params["project"] = self.project
        if self.event_type:
            where.append("event_type = {event_type:String}")
            params["event_type"] = self.event_type
        if self.effect:
            where.append(f"{display_effect_sql()} = {{effect:String}}")
            params["effect"] = self.effect
        if self.service:
            where.append("service = {service:String}")
            params["service"] = self.service
        if self.stripe_event_id:
            where.append("stripe_event_id = {stripe_event_id:String}")
            params["stripe_event_id"] = self.stripe_event_id
        if self.incident_ids:
            where.append("incident_id IN {incident_ids:Array(String)}")
            params["incident_ids"] = list(self.incident_ids)
        if self.states:
            having.append("current_state IN {states:Array(String)}")
            params["states"] = list(self.states)
        if self.kind:
            having.append("current_kind = {kind:String}")
            params["kind"] = self.kind
        if self.opened_since:
            having.append("opened_at >= {opened_since:DateTime64(6, 'UTC')}")
            params["opened_since"] = self.opened_since
        if self.opened_until:
            having.append("opened_at < {opened_until:DateTime64(6, 'UTC')}")
            params["opened_until"] = self.opened_until
        return " AND ".join(where), " AND ".join(having), params


@dataclass
class IncidentPage:
    """One page of incident summaries."""

    items: list[IncidentSummary] = field(default_factory=list)
    total: int = 0


def _summary(row: dict[str, Any]) -> IncidentSummary:
    return IncidentSummary(
        id=row["id"],
        identity=ExpectationIdentity(
            row["project_name"], row["event_id"], row["stored_effect"], row["type"], row["service_name"]
        ),
        state=State(row["current_state"]),
        kind=row["current_kind"],
        opened_at=row["opened_at"],
        updated_at=row["updated_at"],
        reason=row["last_reason"],
        replay_id=row["last_replay_id"],
    )


def _summaries(
    client: Client, where: str, having: str, params: dict[str, Any], limit: int, offset: int
) -> IncidentPage:
    sql = _PAGE.replace("__SUMMARY__", summary_sql(where, having))
    rows = list(client.query(sql, parameters={**params, "limit": limit, "offset": offset}).named_results())
    page = IncidentPage(items=[_summary(row) for row in rows], total=int(rows[0]["total"]) if rows else 0)
    if not rows and offset > 0:  # past the end: still report the total
        page.total = count_incidents(client, where, having, params)
    return page


def count_incidents(client: Client, where: str, having: str, params: dict[str, Any]) -> int:
    """How many incidents match."""
    wrapped = f"SELECT count() FROM ({summary_sql(where, having)})"
    return int(client.query(wrapped, parameters=params).result_rows[0][0])


def list_incidents(client: Client, filters: IncidentFilter, limit: int, offset: int) -> IncidentPage:
    """Incidents matching ``filters``, most recently updated first."""
    where, having, params = filters.clauses()
    return _summaries(client, where, having, params, limit, offset)


def get_incident(client: Client, incident_id: str) -> IncidentSummary | None:
    """One incident summary, or ``None``."""
    page = _summaries(client, "incident_id = {id:String}", "1", {"id": incident_id}, 1, 0)
    return page.items[0] if page.items else None


def incident_log(client: Client, incident_id: str) -> list[LogEntry]:
    """The incident's log rows in order."""
    result = client.query(
        f"""SELECT transition, state, kind, actor, reason, at, seq, replay_id, details
            FROM {INCIDENT_LOG_TABLE} FINAL WHERE incident_id = {{id:String}} ORDER BY seq""",
        parameters={"id": incident_id},
    )
    return [
        LogEntry(
            transition=TransitionType(row["transition"]),
            state=State(row["state"]) if row["state"] else None,
            kind=row["kind"],
            actor=row["actor"],
            reason=row["reason"],
            at=row["at"],
            seq=int(row["seq"]),
            replay_id=row["replay_id"],
            details=json.loads(row["details"]) if row["details"] else {},
        )
        for row in result.named_results()
    ]


_SIGNAL_COLUMNS = """signal, signal_id, project, stripe_event_id, effect, event_type, service, outcome, at,
    due_at, attempt, error_type, error_message, replay_id, livemode, account, customer, amount, currency,
    trace_id, span_id, receipt_trace_id, receipt_span_id, source, ingested_at"""


def _signal(row: dict[str, Any]) -> SignalRecord:
    return SignalRecord(
        signal=row["signal"],
        signal_id=row["signal_id"],
        identity=ExpectationIdentity(
            row["project"], row["stripe_event_id"], row["effect"], row["event_type"], row["service"]
        ),
        outcome=row["outcome"],
        at=row["at"],
        due_at=row["due_at"] if row["signal"] == "receipt" else None,
        attempt=int(row["attempt"]),
        error_type=row["error_type"],
        error_message=row["error_message"],
        replay_id=row["replay_id"],
        livemode=row["livemode"],
        account=row["account"],
        customer=row["customer"],
        amount=row["amount"],
        currency=row["currency"],
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        receipt_trace_id=row["receipt_trace_id"],
        receipt_span_id=row["receipt_span_id"],
        source=row["source"],
        ingested_at=row["ingested_at"],
    )


def signals_of(client: Client, stripe_event_id: str, identity: ExpectationIdentity | None = None) -> list[SignalRecord]:
    """The signals of an event (of one expectation, or all), each once, in time order."""
    condition = "stripe_event_id = {event:String}"
    params: dict[str, Any] = {"event": stripe_event_id}
    if identity is not None:
        condition += " AND effect = {effect:String} AND project = {project:String}"
        params["effect"] = identity.effect
        params["project"] = identity.project
    result = client.query(
        f"SELECT {_SIGNAL_COLUMNS} FROM {SIGNALS_TABLE} FINAL WHERE {condition} ORDER BY at, signal_id",
        parameters=params,
    )
    return [_signal(row) for row in result.named_results()]
