"""SQL that summarises expectations, for the engine (the ones a window needs decided) and the API.

Summaries come from ``fw_expectations`` (see :mod:`.schema`), whose aggregates ignore
duplicated signals. For expectations that already have an incident, their results are read
from ``fw_signals`` and de-duplicated by signal id in Python, keeping each signal's first
``ingested_at`` (that is what tells a new result from a replayed one). Which expectations one
evaluation reads is :mod:`.window`'s choice; their summaries and their incidents' heads
(:func:`..incidents.log_reads.heads_select`) are two point reads, joined in Python.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

from clickhouse_connect.driver.client import Client

from fulfillwatch.collector_processor.identity import ExpectationIdentity
from fulfillwatch.collector_processor.signals import SIGNALS_TABLE
from fulfillwatch.incident_engine.detection.window import Beside, Live, Window, decide, side_by_side
from fulfillwatch.incident_engine.incidents.log_reads import head_from_row, heads_select
from fulfillwatch.incident_engine.model.status import Assessment, Expectation, Health, ResultInfo, assess
from fulfillwatch.incident_engine.model.transitions import IncidentHead
from fulfillwatch.incident_engine.schema import (
    ARRIVALS_TABLE,
    DEADLINES_TABLE,
    EPOCH,
    EXPECTATIONS_TABLE,
    INCIDENT_ID_SQL,
    NEVER,
)

_FAR_FUTURE = datetime(9999, 1, 1, tzinfo=timezone.utc)


_Key = tuple[str, str, str]  # (project, stripe event id, stored effect)


def _key(row: dict[str, Any]) -> _Key:
    return row["project"], row["stripe_event_id"], row["effect"]


#: The columns of ``fw_expectations`` a summary is made of, and how rows of one expectation
#: combine: as the table's own ``SimpleAggregateFunction`` columns do when its parts merge.
_LARGEST = ("event_type", "receipt_service", "any_service", "last_result", "has_skipped")
_SMALLEST = ("first_at", "receipt_at", "due_at")


def _rows_select(condition: str, *, incident_id: bool) -> str:
    """The ``fw_expectations`` rows matching ``condition``, as stored: an expectation has one
    per part that has not merged with the others yet; :func:`_summaries_of` combines them. A
    ``GROUP BY`` in the store did the same in ~20 ms instead of ~15 on a 10 M store (chDB plans
    an aggregation longer than it runs it on a few rows; docs/BENCHMARKS.md)."""
    return f"""
    SELECT {f"{INCIDENT_ID_SQL} AS incident_id," if incident_id else ""}
           project, stripe_event_id, effect, {", ".join(_LARGEST + _SMALLEST)}
    FROM {EXPECTATIONS_TABLE}
    WHERE {condition}
"""


def _summaries_of(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One summary per expectation from its rows (of :func:`_rows_select`)."""
    summaries: dict[_Key, dict[str, Any]] = {}
    for row in rows:
        key = _key(row)
        summary = summaries.get(key)
        if summary is None:
            summaries[key] = row
            continue
        for column in _LARGEST:
            summary[column] = max(summary[column], row[column])
        for column in _SMALLEST:
            summary[column] = min(summary[column], row[column])
    return list(summaries.values())


#: Point reads go by event id, and rows of other effects or projects of those events are dropped
#: in Python (:func:`_events`): with the table's whole key as a tuple ``IN`` a set of keys,
#: ClickHouse searches every part's index generically, which cost a tick's summaries ~5-7 ms more
#: (3 and 20 keys on the 10 M store; docs/BENCHMARKS.md).
_OF_EVENTS = "stripe_event_id IN {events:Array(String)}"
#: For the engine, which knows each expectation's incident id from its window.
_ROWS_OF_EVENTS = _rows_select(_OF_EVENTS, incident_id=False)
_HEADS_BY_IDS = heads_select("incident_id IN {ids:Array(String)}")


def _last_result(values: tuple[Any, ...]) -> ResultInfo:
    at, signal_id, outcome, error_type, error_message, replay_id, attempt = values
    return ResultInfo(signal_id, at, outcome, error_type, error_message, replay_id, int(attempt))


def _new_results(rows: list[tuple[Any, ...]], since: datetime, until: datetime) -> tuple[ResultInfo, ...]:
    """Results first stored in ``(since, until]``. A replayed row is stored again later, so what
    counts is the earliest ``ingested_at`` of each signal id. Rows stored after ``until`` became
    visible between this tick's queries: the next tick reads them, with the summary that
    includes them."""
    first: dict[str, tuple[Any, ...]] = {}
    for values in rows:
        known = first.get(values[0])
        if known is None or values[7] < known[7]:
            first[values[0]] = values
    return tuple(
        ResultInfo(row[0], row[1], row[2], row[3], row[4], row[5], int(row[6]), row[7])
        for row in first.values()
        if since < row[7] <= until
    )


_RESULTS_OF = f"""
    SELECT project, stripe_event_id, effect,
           signal_id, at, outcome, error_type, error_message, replay_id, attempt, ingested_at
    FROM {SIGNALS_TABLE}
    WHERE {_OF_EVENTS} AND signal = 'result'
      -- No signal of an expectation is older than its first_at: the daily partitions before the
      -- oldest of them are skipped (a read by key costs a lookup in every part: at 100 M
      -- expectations, 270 parts made a 15-minute step's results take 5 s).
      AND at >= {{oldest:DateTime64(6, 'UTC')}}
"""


def _results_of(client: Client, summaries: list[dict[str, Any]]) -> dict[_Key, list[tuple[Any, ...]]]:
    """Every result row (duplicates included) of the expectations with these summaries."""
    found: dict[_Key, list[tuple[Any, ...]]] = {_key(row): [] for row in summaries}
    if summaries:
        oldest = min(row["first_at"] for row in summaries)
        for row in client.query(_RESULTS_OF, parameters={"events": _events(found), "oldest": oldest}).result_rows:
            results = found.get((row[0], row[1], row[2]))
            if results is not None:  # not another effect or project of the same event
                results.append(tuple(row[3:]))
    return found


def _events(keys: Iterable[_Key]) -> list[str]:
    """The event ids of these keys, for a point read by :data:`_OF_EVENTS`."""
    return sorted({event for _, event, _ in keys})


def _expectation(
    row: dict[str, Any], incident_id: str, results: list[tuple[Any, ...]], new_since: datetime, new_until: datetime
) -> Expectation:
    """An expectation from its summary (of :func:`_summaries_of`): the stand-ins
    ``NEVER`` and ``EPOCH`` that the aggregates skip mean "no receipt" and "no decisive result";
    the receipt's service is the expectation's, else any signal's."""
    has_receipt = row["receipt_at"] < NEVER
    return Expectation(
        incident_id=incident_id,
        identity=ExpectationIdentity(
            row["project"],
            row["stripe_event_id"],
            row["effect"],
            row["event_type"],
            row["receipt_service"] or row["any_service"],
        ),
        first_at=row["first_at"],
        receipt_at=row["receipt_at"] if has_receipt else None,
        due_at=row["due_at"] if has_receipt else None,
        last_result=_last_result(row["last_result"]) if row["last_result"][0] > EPOCH else None,
        has_skipped=bool(row["has_skipped"]),
        new_results=_new_results(results, new_since, new_until),
    )


def _summaries(client: Client, chosen: dict[_Key, str]) -> list[dict[str, Any]]:
    rows = client.query(_ROWS_OF_EVENTS, parameters={"events": _events(chosen)}).named_results()
    return _summaries_of(row for row in rows if _key(row) in chosen)


def _heads(client: Client, chosen: dict[_Key, str]) -> dict[str, IncidentHead]:
    ids = sorted(set(chosen.values()))
    return {
        row["incident_id"]: head_from_row(row)
        for row in client.query(_HEADS_BY_IDS, parameters={"ids": ids}).named_results()
    }


class Evaluation(NamedTuple):
    """What :func:`evaluate` found: the expectations that may need a transition, with their
    incident heads and verdicts, and the incident ids of those still pending (a deadline still
    to come)."""

    decided: list[tuple[Expectation, IncidentHead | None, Assessment]]
    pending: frozenset[str]

    @property
    def pairs(self) -> list[tuple[Expectation, IncidentHead | None]]:
        """The expectations that may need a transition, with their incident heads."""
        return [(expectation, head) for expectation, head, _ in self.decided]


def evaluate(client: Client, window: Window, chosen: dict[_Key, str], *, beside: Beside | None = None) -> Evaluation:
    """The chosen expectations (key → incident id, see :mod:`.window`) that may need a
    transition, with their incident heads: those with an incident, and those without one whose
    verdict is failing (nothing else can lead to a transition, see :func:`~.transitions.plan`);
    and which of them are still pending.

    ``beside``: where the heads are read while the summaries are read on ``client``."""
    if not chosen:
        return Evaluation([], frozenset())
    # Two plain point reads, joined here: as one statement with the join and the verdict's
    # filter in SQL, chDB took ~25 ms to plan what the two do in ~15 (docs/BENCHMARKS.md). chDB
    # plans and runs the statements of two clients at once: side by side, an evaluation took
    # 60-65 ms instead of 72-76 on the 10 M benchmark store.
    summaries, heads = side_by_side(client, beside, lambda on: _summaries(on, chosen), lambda on: _heads(on, chosen))
    # Results are needed only to audit what happened to an existing incident.
    results = _results_of(client, [row for row in summaries if chosen[_key(row)] in heads])
    decided: list[tuple[Expectation, IncidentHead | None, Assessment]] = []
    pending: set[str] = set()
    for row in summaries:
        key = _key(row)
        expectation = _expectation(row, chosen[key], results.get(key, []), window.since, window.until)
        head = heads.get(expectation.incident_id)
        verdict = assess(expectation, window.now, window.default_timeout)
        if verdict.health is Health.PENDING:
            pending.add(expectation.incident_id)
        if head is not None or verdict.health is Health.FAILING:
            decided.append((expectation, head, verdict))
    return Evaluation(decided, frozenset(pending))


def evaluate_window(client: Client, window: Window) -> list[tuple[Expectation, IncidentHead | None]]:
    """Every expectation the window touches that may need a transition, with its incident head."""
    return evaluate(client, window, decide(client, window, Live.read(client)).to_evaluate).pairs


def expectations_of_event(client: Client, stripe_event_id: str) -> list[Expectation]:
    """Every expectation of one Stripe event (for the event lookup API; no ``new_results``)."""
    return expectations_of_events(client, [stripe_event_id])


def expectations_of_events(client: Client, stripe_event_ids: Sequence[str]) -> list[Expectation]:
    """Every expectation of the given Stripe events, in one read (no ``new_results``)."""
    result = client.query(_rows_select(_OF_EVENTS, incident_id=True), parameters={"events": list(stripe_event_ids)})
    summaries = _summaries_of(result.named_results())
    return [_expectation(row, row["incident_id"], [], _FAR_FUTURE, _FAR_FUTURE) for row in summaries]


def next_data(
    client: Client, ingested_after: datetime, due_after: datetime, default_timeout: timedelta
) -> tuple[datetime | None, datetime | None]:
    """The first ingest time and the first deadline after the given instants (``None`` when
    there is none), so that an engine far behind skips empty stretches in one step. Deadlines
    are receipts' and those of skipped results without a receipt (``default_timeout`` after
    they were seen), which a jump must not pass over either."""
    ingest = client.query(
        f"SELECT min(ingested_at), count() FROM {ARRIVALS_TABLE} WHERE ingested_at > {{i:DateTime64(6, 'UTC')}}",
        parameters={"i": ingested_after},
    ).result_rows[0]
    due = client.query(
        f"""SELECT min(if(kind = 'receipt', due_at, due_at + toIntervalSecond({{t:UInt32}}))), count()
            FROM {DEADLINES_TABLE}
            WHERE (kind = 'receipt' AND due_at > {{d:DateTime64(6, 'UTC')}})
               OR (kind = 'skipped' AND due_at > {{d:DateTime64(6, 'UTC')}} - toIntervalSecond({{t:UInt32}}))""",
        parameters={"d": due_after, "t": int(default_timeout.total_seconds())},
    ).result_rows[0]
    return (ingest[0] if ingest[1] else None), (due[0] if due[1] else None)
