"""Stripe as the source of truth: events the app never recorded become ``not_received``.

Stripe's API cannot be reached from here, so a stand-in HTTP server on localhost plays Stripe's
Events API (support.stripe_api: Stripe's list envelope, cursors, ``Stripe-Account``, Bearer
auth, scripted 429/500/401) with Stripe-shaped fixture events. Everything of ours is real: the
official ``stripe`` library talks HTTP to the stand-in, the app records receipts through the
instrumentation's ``init()`` and the OpenTelemetry SDK, the service runs in this process on
chDB, and the engine's clock is moved by the test (no waiting on grace periods). Retry waits
are recorded instead of slept.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import fulfillwatch.instrumentation as fw
from fulfillwatch.collector_processor.store import Store
from fulfillwatch.incident_engine.sources.stripe_api import StripeRefused, StripeUnavailable
from support.inprocess import InProcessService
from support.otlp import encode, recorded_spans
from support.stripe_api import StandInStripeServer, stripe_event, stripe_table

GRACE_S = 900


class RecordedWaits:
    """The reconciler's backoff: recorded, not slept."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def _service(store: Store, directory: Path, config: str, **kwargs: Any) -> InProcessService:
    directory.mkdir(exist_ok=True)
    service = InProcessService(store, directory, config, **kwargs)
    assert service.service.reconciler is not None or "[stripe]" not in config
    return service


def _receipts(service: InProcessService, events: list[dict[str, Any]], **receipt: Any) -> None:
    """The app accepts these events: receipts through init() and the OpenTelemetry SDK."""
    with recorded_spans(service="shop") as spans:
        for event in events:
            fw.record_receipt(event, **receipt)
        assert service.post_spans(encode(spans.get_finished_spans())).status_code == 200


def _incidents(service: InProcessService, **filters: str) -> list[dict[str, Any]]:
    page = service.api.get("/api/incidents", params={"limit": 200, **filters}).json()
    return list(page["items"])


def _rows(store: Store, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in store.client("test").query(sql).result_rows]


def test_fifty_events_forty_seven_receipts_three_not_received_across_a_restart(
    store: Store, tmp_path: Path, stripe_api: StandInStripeServer
) -> None:
    now = int(time.time())
    events = [stripe_event("checkout.session.completed", f"evt_rec_{i:02d}", now - 600 + i) for i in range(50)]
    missing = {"evt_rec_07", "evt_rec_23", "evt_rec_41"}
    for event in events:
        stripe_api.state.add(event, undelivered=event["id"] == "evt_rec_23")

    first = _service(store, tmp_path / "first", stripe_table(stripe_api.url))
    _receipts(first, [e for e in events if e["id"] not in missing])
    assert first.service.reconciler is not None
    first.service.reconciler.page_size = first.service.reconciler.flush_events = 20
    # The second page fails for good (Stripe asks not to retry): the poll stops after one page.
    stripe_api.state.fail_request(2, 500, **{"Stripe-Should-Retry": "false"})
    with pytest.raises(StripeUnavailable):
        first.service.reconciler.poll()
    assert _rows(store, "SELECT count() FROM fw_stripe_events") == [(20,)]
    first.close()

    # A restart: a new service on the same store resumes after the stored page.
    second = _service(store, tmp_path / "second", stripe_table(stripe_api.url))
    assert second.service.reconciler is not None
    second.service.reconciler.page_size = 20
    stripe_api.state.requests.clear()
    report = second.service.reconciler.poll()
    resumed = stripe_api.state.requests[0]["query"]
    assert resumed["starting_after"] == [events[-20]["id"]]  # newest first: page 1 ended there
    assert report.new_events == 30
    assert _rows(store, "SELECT count(), uniqExact(stripe_event_id) FROM fw_stripe_events FINAL") == [(50, 50)]
    assert second.service.reconciler.poll().new_events == 0  # the overlap re-read adds nothing

    declared = second.service.declared
    assert declared is not None
    assert declared.check().opened == 0  # within the grace period
    second.clock.advance(GRACE_S + 1)
    assert declared.check().opened == 3
    opened = {i["stripe_event_id"]: i for i in _incidents(second, kind="not_received")}
    assert set(opened) == missing
    assert "delivery failed" in opened["evt_rec_23"]["reason"]
    assert "handler lost" in opened["evt_rec_07"]["reason"]
    assert len(_incidents(second)) == 3

    detail = second.api.get(f"/api/incidents/{opened['evt_rec_07']['id']}").json()
    assert detail["stripe_event"]["raw"]["id"] == "evt_rec_07"
    types = [entry["type"] for entry in detail["timeline"]]
    assert types[:3] == ["stripe_event_created", "stripe_event_read", "grace_deadline"] and "opened" in types

    # A late receipt resolves its incident; the other two stay open.
    _receipts(second, [e for e in events if e["id"] == "evt_rec_07"])
    assert declared.check().resolved == 1
    resolved = second.api.get(f"/api/incidents/{opened['evt_rec_07']['id']}").json()
    assert resolved["state"] == "resolved" and resolved["reason"].startswith("late receipt")
    assert {i["stripe_event_id"] for i in _incidents(second, state="open")} == {"evt_rec_23", "evt_rec_41"}
    # (The engine runs on the test's clock, ahead of the store's: it first ticks once everything
    # the test sends is stored, as a real engine, on the store's clock, would see it.)
    assert second.tick().transitions == 0  # the 48 receipts are within their own deadline

    # From its late receipt on it is an ordinary expectation: no result by the receipt's own
    # deadline reopens the incident — "late receipt" does not hide a job that then never ran.
    second.clock.advance(1801)
    while not second.tick().caught_up:
        pass
    reopened = second.api.get(f"/api/incidents/{opened['evt_rec_07']['id']}").json()
    assert (reopened["state"], reopened["kind"]) == ("open", "result_missing")
    assert [e["type"] for e in reopened["timeline"] if e["state"]][-1] == "reopened"
    second.close()


def test_rate_limits_and_errors_are_retried_with_backoff(
    store: Store, tmp_path: Path, stripe_api: StandInStripeServer
) -> None:
    stripe_api.state.add(stripe_event("invoice.paid", "evt_backoff", int(time.time()) - 60))
    service = _service(store, tmp_path, stripe_table(stripe_api.url))
    assert service.service.reconciler is not None
    waits = RecordedWaits()
    service.service.reconciler.api.sleep = waits
    stripe_api.state.fail_next(429, **{"Retry-After": "7"})
    stripe_api.state.fail_next(500)
    report = service.service.reconciler.poll()
    assert report.new_events == 1
    assert len(waits.delays) == 2
    assert waits.delays[0] >= 7  # Retry-After honoured
    assert 0 < waits.delays[1] <= 60
    health = service.api.get("/healthz").json()
    assert health["stripe"]["ok"] is True
    service.close()


def test_a_refused_key_shows_in_healthz_while_detection_goes_on(
    store: Store, tmp_path: Path, stripe_api: StandInStripeServer
) -> None:
    stripe_api.state.key = "rk_test_SomeOtherKeyThanOurs0000"
    service = _service(store, tmp_path, stripe_table(stripe_api.url))
    assert service.service.reconciler is not None
    with pytest.raises(StripeRefused):
        service.service.reconciler.poll()
    incident = service.open_failed_incident("evt_other_detection")  # the engine still works
    assert incident["kind"] == "result_failed"
    answer = service.api.get("/healthz")
    assert answer.status_code == 200  # a Stripe problem does not take the process out of rotation
    assert answer.json()["stripe"] == {"ok": False, "error": "Stripe refused the API key (401)", "warnings": []}
    service.close()


def test_connect_accounts_have_their_own_events_cursors_and_incidents(
    store: Store, tmp_path: Path, stripe_api: StandInStripeServer
) -> None:
    now = int(time.time())
    stripe_api.state.add(stripe_event("invoice.paid", "evt_acct_a", now - 100), account="acct_1Alpha")
    stripe_api.state.add(stripe_event("invoice.paid", "evt_acct_b", now - 50), account="acct_2Beta")
    stripe_api.state.add(stripe_event("invoice.paid", "evt_platform_only", now - 10))  # not listed: no account
    stripe_api.state.add(stripe_event("charge.refunded", "evt_untracked", now - 5), account="acct_1Alpha")
    service = _service(store, tmp_path, stripe_table(stripe_api.url, 'accounts = ["acct_1Alpha", "acct_2Beta"]'))
    assert service.service.reconciler is not None and service.service.declared is not None
    assert service.service.reconciler.poll().new_events == 2  # the untracked type is not listed (types[])
    assert {r["account"] for r in stripe_api.state.requests} == {"acct_1Alpha", "acct_2Beta"}
    cursors = dict(
        _rows(
            store,
            "SELECT key, argMax(value, version) FROM fw_engine_state WHERE key LIKE 'stripe_cursor:%' GROUP BY key",
        )
    )
    assert set(cursors) == {"stripe_cursor:default:acct_1Alpha", "stripe_cursor:default:acct_2Beta"}
    assert cursors["stripe_cursor:default:acct_1Alpha"] != cursors["stripe_cursor:default:acct_2Beta"]

    service.clock.advance(GRACE_S + 1)
    assert service.service.declared.check().opened == 2
    for incident in _incidents(service, kind="not_received"):
        detail = service.api.get(f"/api/incidents/{incident['id']}").json()
        account = {"evt_acct_a": "acct_1Alpha", "evt_acct_b": "acct_2Beta"}[incident["stripe_event_id"]]
        assert detail["stripe_event"]["account"] == account
        [opened] = [e for e in detail["timeline"] if e["type"] == "opened"]
        assert opened["details"]["account"] == account
    service.close()


def test_a_long_backfill_is_read_over_several_slots_between_ticks(
    store: Store, tmp_path: Path, stripe_api: StandInStripeServer
) -> None:
    now = int(time.time())
    for number in range(60):
        stripe_api.state.add(stripe_event("invoice.paid", f"evt_slot_{number:02d}", now - 3000 + number))
    service = _service(store, tmp_path, stripe_table(stripe_api.url))
    reconciler = service.service.reconciler
    assert reconciler is not None
    reconciler.page_size = reconciler.flush_events = 20
    # No time at all: one stored batch per slot, the walk kept in the store between slots.
    reports = [reconciler.poll(budget_s=0)]
    while not reports[-1].finished:
        reports.append(reconciler.poll(budget_s=0))
    assert [r.new_events for r in reports] == [20, 20, 20]
    assert [r.finished for r in reports] == [False, False, True]
    assert _rows(store, "SELECT uniqExact(stripe_event_id), count() FROM fw_stripe_events FINAL") == [(60, 60)]
    # The engine runs it between ticks: work left over asks for the next slot at once.
    stripe_api.state.add(stripe_event("invoice.paid", "evt_slot_new", now))
    assert reconciler.run_due() is False  # one page of news: done within the budget
    assert service.service.engine.chores == [reconciler, service.service.declared]
    service.close()
