"""``fw_active_incidents``: live incidents only, in step with the log, read by active listings.

In-process on a real chDB store: an incident enters when it opens, leaves when it is resolved
(its timeline stays complete in the log), comes back when it reopens; a stale row left by two
writers racing is settled by the engine's next tick; listings read it and agree with the log.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fulfillwatch.instrumentation as fw
from fulfillwatch.collector_processor.identity import ExpectationIdentity
from fulfillwatch.collector_processor.store import Store
from fulfillwatch.incident_engine.incidents import active_incidents, log_reads
from fulfillwatch.incident_engine.incidents.incident_log import append_transitions
from fulfillwatch.incident_engine.incidents.log_reads import IncidentFilter
from fulfillwatch.incident_engine.model.transitions import State, Transition, TransitionType
from fulfillwatch.incident_engine.schema import ACTIVE_INCIDENTS_TABLE
from support.inprocess import InProcessService, TenantNotFound
from support.otlp import encode, recorded_spans

ACTIVE = ("open", "acknowledged", "reprocessing")


def _live(store: Store) -> dict[str, str]:
    rows = store.client("test").query(f"SELECT incident_id, state FROM {ACTIVE_INCIDENTS_TABLE}").result_rows
    return {str(incident_id): str(state) for incident_id, state in rows}


def _result(service: InProcessService, event_id: str, outcome: str) -> None:
    with recorded_spans(service="shop") as spans:
        error = TenantNotFound("no tenant row") if outcome == "failure" else None
        fw.record_result(event_id, outcome, error=error, event_type="invoice.paid")
        assert service.post_spans(encode(spans.get_finished_spans())).status_code == 200
    service.tick()


def test_an_incident_leaves_when_resolved_keeps_its_timeline_and_returns_when_it_reopens(
    service: InProcessService, store: Store
) -> None:
    incident = service.open_failed_incident("evt_live_cycle")
    assert _live(store) == {incident["id"]: "open"}

    _result(service, "evt_live_cycle", "success")
    detail = service.api.get(f"/api/incidents/{incident['id']}").json()
    assert detail["state"] == "resolved"
    assert _live(store) == {}  # closed: out of the live set
    kinds = [entry["type"] for entry in detail["timeline"]]
    assert "opened" in kinds and "resolved" in kinds  # the history is all still in the log
    assert service.api.get("/api/incidents", params={"state": "resolved"}).json()["total"] == 1

    _result(service, "evt_live_cycle", "failure")
    assert service.api.get(f"/api/incidents/{incident['id']}").json()["state"] == "open"
    assert _live(store) == {incident["id"]: "open"}  # reopened: live again


def test_people_s_actions_are_seen_at_once_and_ignoring_removes(service: InProcessService, store: Store) -> None:
    incident = service.open_failed_incident("evt_live_actions")
    assert service.api.post(f"/api/incidents/{incident['id']}/acknowledge", json={}).status_code == 200
    listed = service.api.get("/api/incidents", params={"state": "acknowledged"}).json()
    assert [item["id"] for item in listed["items"]] == [incident["id"]] and listed["total"] == 1
    assert service.api.post(f"/api/incidents/{incident['id']}/ignore", json={"reason": "test order"}).status_code == 200
    assert _live(store) == {}
    assert service.api.get("/api/incidents", params={"state": "open"}).json()["total"] == 0


def test_a_stale_row_from_racing_writers_is_settled_by_the_next_tick(service: InProcessService, store: Store) -> None:
    kept = service.open_failed_incident("evt_live_race_kept")
    gone = service.open_failed_incident("evt_live_race_gone")
    _result(service, "evt_live_race_gone", "success")
    client = store.client("test")
    # Two writers at one instant: each appended a row (here: a note), and the refresh that read
    # the log before the other's row was visible wrote last — a resolved incident still
    # listed, an open one missing.
    for incident in (kept, gone):
        [summary] = log_reads.list_incidents(client, IncidentFilter(incident_ids=(incident["id"],)), 1, 0).items
        note = Transition(
            summary.id,
            summary.identity,
            TransitionType.NOTE,
            None,
            "",
            "bob",
            "looking",
            f"note:{summary.id}",
            datetime.now(timezone.utc),
        )
        append_transitions(client, [note])
    client.command(
        f"INSERT INTO {ACTIVE_INCIDENTS_TABLE} (incident_id, state) VALUES ({{id:String}}, 'open')",
        parameters={"id": gone["id"]},
    )
    delete = f"DELETE FROM {ACTIVE_INCIDENTS_TABLE} WHERE incident_id = {{id:String}}"
    client.command(delete, parameters={"id": kept["id"]})
    # The engine follows the feed: the notes are new to it, so it re-derives both incidents.
    service.tick()
    assert _live(store) == {kept["id"]: "open"}


def test_an_action_whose_refresh_failed_is_settled_by_the_next_tick(service: InProcessService, store: Store) -> None:
    incident = service.open_failed_incident("evt_live_refresh_failed")
    client = store.client("test")
    # The store refuses the refresh after the acknowledgement was appended (here: the table is
    # away for a moment). On an embedded store the engine reads the feed only when some row was
    # not refreshed by its writer: this one was not.
    client.command(f"RENAME TABLE {ACTIVE_INCIDENTS_TABLE} TO fw_active_incidents_away")
    try:
        answer = service.api.post(f"/api/incidents/{incident['id']}/acknowledge", json={"reason": "on it"})
    finally:
        client.command(f"RENAME TABLE fw_active_incidents_away TO {ACTIVE_INCIDENTS_TABLE}")
    assert answer.status_code >= 500
    assert _live(store) == {incident["id"]: "open"}  # stale: the acknowledgement is in the log only
    service.tick()
    assert _live(store) == {incident["id"]: "acknowledged"}


def test_active_listings_agree_with_the_log(service: InProcessService, store: Store) -> None:
    for n in range(6):
        service.open_failed_incident(f"evt_live_agree{n}")
    ids = [item["id"] for item in service.api.get("/api/incidents").json()["items"]]
    service.api.post(f"/api/incidents/{ids[0]}/acknowledge", json={})
    service.api.post(f"/api/incidents/{ids[1]}/ignore", json={"reason": "duplicate order"})
    client = store.client("test")
    for states in (("open",), ("acknowledged",), ACTIVE):
        chosen = IncidentFilter(states=states)
        from_table = log_reads.list_incidents(client, chosen, 50, 0)
        where, having, params = chosen.conditions()
        from_log = client.query(
            f"SELECT id FROM ({log_reads.summary_select(where, having)}) ORDER BY updated_at DESC, id",
            parameters=params,
        ).result_rows
        assert [item.id for item in from_table.items] == [row[0] for row in from_log], states
        assert from_table.total == len(from_log)
    assert log_reads.count_by(client, IncidentFilter(states=ACTIVE), "kind") == {"result_failed": 5}


def test_rebuild_derives_the_table_from_the_log(service: InProcessService, store: Store) -> None:
    first = service.open_failed_incident("evt_live_rebuild1")
    second = service.open_failed_incident("evt_live_rebuild2")
    _result(service, "evt_live_rebuild2", "success")
    client = store.client("test")
    client.command(f"TRUNCATE TABLE {ACTIVE_INCIDENTS_TABLE}")  # e.g. a store from before the table
    before = datetime.now(timezone.utc)
    position = active_incidents.rebuild(client)
    assert _live(store) == {first["id"]: "open"} and second["id"] not in _live(store)
    assert position >= log_reads.latest_seq(client) and position / 1e9 <= before.timestamp() + 1


def test_time_to_resolve_reads_the_window_s_resolutions_and_agrees_with_the_whole_log(
    service: InProcessService,
) -> None:
    service.open_failed_incident("evt_live_ttr")
    _result(service, "evt_live_ttr", "success")
    service.tick()  # resolved: at the success's own time, moments after the failure
    stats = service.api.get("/api/stats").json()
    assert stats["resolved"] == 1
    assert 0 < stats["mean_time_to_resolve_s"] < 60, stats
    client = service.store.client("test")
    now = datetime.now(timezone.utc)
    from_the_feed = log_reads.time_to_resolve(client, now - timedelta(days=1))
    from_the_whole_log = log_reads.time_to_resolve(client, now - timedelta(days=31))  # beyond the feed
    assert from_the_feed == from_the_whole_log == (1, stats["mean_time_to_resolve_s"])
    assert log_reads.time_to_resolve(client, now + timedelta(hours=1)) == (0, None)  # none since then


_AT = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
_LATER = st.builds(
    lambda kind_of, state, kind, reason, replay_id, seconds: (kind_of, state, kind, reason, replay_id, seconds),
    st.sampled_from(list(TransitionType)),
    st.none() | st.sampled_from(list(State)),
    st.sampled_from(["", "result_failed", "result_missing"]),
    st.text(max_size=20) | st.just("r" * 5000),
    st.sampled_from(["", "rpl_1", "rpl_2"]),
    st.integers(min_value=-3600, max_value=3600),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(opened_kind=st.sampled_from(["result_failed", "result_missing"]), later=st.lists(_LATER, max_size=5))
def test_a_new_incident_s_row_made_from_its_transitions_is_the_log_s_summary(
    store: Store, opened_kind: str, later: list[tuple[TransitionType, State | None, str, str, str, int]]
) -> None:
    """What the engine writes for an incident it opens, without reading the log back, is what
    the log's summary says (any rows after the opening, in the same append)."""
    incident_id = f"inc_{uuid.uuid4().hex[:24]}"
    identity = ExpectationIdentity("shop-eu", f"evt_{incident_id}", "grant", "invoice.paid", "shop")

    def row(
        kind_of: TransitionType, state: State | None, kind: str, reason: str, replay: str, at: datetime
    ) -> Transition:
        return Transition(incident_id, identity, kind_of, state, kind, "system", reason, uuid.uuid4().hex, at, replay)

    transitions = [row(TransitionType.OPENED, State.OPEN, opened_kind, "deadline passed", "", _AT)]
    transitions += [row(*values[:5], _AT + timedelta(seconds=values[5])) for values in later]
    client = store.client("test")
    append_transitions(client, transitions)
    active_incidents.refresh(client, [incident_id])  # from the log
    from_log = client.query(
        f"SELECT * FROM {ACTIVE_INCIDENTS_TABLE} WHERE incident_id = {{id:String}}", parameters={"id": incident_id}
    ).result_rows
    made = active_incidents.summary_of_new_incident(transitions)
    assert (list(from_log[0]) if from_log else None) == made
