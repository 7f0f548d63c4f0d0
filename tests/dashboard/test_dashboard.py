"""The dashboard's pages (Streamlit AppTest) against a real ``fulfillwatch serve`` with data in it,
and its pure view logic."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from fulfillwatch.dashboard import views
from fulfillwatch.dashboard.settings import reset_settings
from support.otlp import encode, record_scenario, recorded_spans
from support.serve import ROOT, ServeProcess, free_port, wait_for

APP = str(ROOT / "dashboard/src/fulfillwatch/dashboard/app.py")


class PlanMappingError(ValueError):
    pass


@pytest.fixture(scope="module")
def seeded(server: ServeProcess) -> dict[str, str]:
    """A failed, a missing, a skipped-only and a healthy event; returns their ids."""
    ids = {name: f"evt_dash{name}{os.getpid()}" for name in ("failed", "missing", "skipped", "healthy")}
    with recorded_spans(service="shop") as spans:
        for name, event_id in ids.items():
            record_scenario(
                event_id,
                name,
                PlanMappingError("no plan"),
                event_type="invoice.paid",
                timeout=1,
                effect="grant_credits",
            )
        assert server.post_spans(encode(spans.get_finished_spans())).status_code == 200
    for name in ("failed", "missing", "skipped"):
        wait_for(lambda n=name: server.incident_for(ids[n]), timeout=15, what=f"the {name} incident")
    return ids


@pytest.fixture
def dashboard_env(server: ServeProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("FULFILLWATCH_DASHBOARD_API_URL", server.api_url)
    monkeypatch.setenv("FULFILLWATCH_API_TOKEN", server.token)
    monkeypatch.setenv("FULFILLWATCH_DASHBOARD_DEMO", "1")
    monkeypatch.setenv("FULFILLWATCH_DASHBOARD_TRACE_URL_TEMPLATE", "http://jaeger.local/trace/{trace_id}")
    reset_settings()
    yield
    reset_settings()


def _app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    assert not at.exception, at.exception
    return at


def _page(page: str, **query: str) -> AppTest:
    at = _app()
    for key, value in query.items():
        at.query_params[key] = value
    at.switch_page(page)
    at.run()
    assert not at.exception, at.exception
    return at


def _texts(at: AppTest) -> str:
    """The page's text as a reader sees it (markdown escapes removed)."""
    return re.sub(
        r"\\(.)",
        r"\1",
        "\n".join(
            str(element.value)
            for kind in ("markdown", "success", "error", "info", "warning", "caption", "text")
            for element in getattr(at, kind)
        ),
    )


def test_overview_shows_open_incidents_rates_and_engine(seeded: dict[str, str], dashboard_env: None) -> None:
    at = _app()
    metrics = {metric.label: metric.value for metric in at.metric}
    assert int(metrics["Open incidents"]) >= 3
    assert metrics["Fulfillment success rate"].endswith("%")
    assert "Engine: heartbeat" in at.success[0].value
    tables = [frame.value for frame in at.dataframe]
    kinds = tables[0].set_index("kind")["open incidents"].to_dict()
    assert kinds["result_failed"] >= 1 and kinds["result_missing"] >= 1 and kinds["duplicate_suppressed"] >= 1


def test_incidents_page_filters_and_pages(seeded: dict[str, str], dashboard_env: None) -> None:
    at = _page("screens/incidents.py")
    table = at.dataframe[0].value
    assert {"id", "state", "kind", "Stripe event"} <= set(table.columns)
    assert seeded["failed"] in set(table["Stripe event"])
    at.selectbox(key="f_kind").select("duplicate_suppressed").run()
    table = at.dataframe[0].value
    assert set(table["kind"]) == {"duplicate_suppressed"} and seeded["skipped"] in set(table["Stripe event"])
    at.text_input(key="f_event").input("evt_no_such_event").run()
    assert "No incidents match these filters." in _texts(at)


def test_incident_page_shows_the_story_and_records_an_acknowledgement(
    server: ServeProcess, seeded: dict[str, str], dashboard_env: None
) -> None:
    incident = server.incident_for(seeded["failed"])
    assert incident is not None
    at = _page("screens/incident.py", id=incident["id"])
    assert "result_failed" in at.subheader[0].value
    assert "PlanMappingError: no plan" in _texts(at)
    assert "invoice.paid" in _texts(at)  # the Stripe event's fields
    audit = at.dataframe[0].value
    assert list(audit["what"])[:1] == ["opened"]
    at.button(key="action_acknowledge").click().run()
    assert "Acknowledge: someone is on it?" in _texts(at)
    at.text_input(key="action_text").input("on it")
    at.button(key="action_confirm").click().run()
    assert not at.exception, at.exception
    after = server.get(f"/api/incidents/{incident['id']}")
    assert after["state"] == "acknowledged"
    assert [(e["type"], e["actor"], e["reason"]) for e in after["timeline"]][-1] == (
        "acknowledged",
        "demo",
        "on it",
    )


def test_ignoring_needs_a_reason(server: ServeProcess, seeded: dict[str, str], dashboard_env: None) -> None:
    incident = server.incident_for(seeded["missing"])
    assert incident is not None
    at = _page("screens/incident.py", id=incident["id"])
    at.button(key="action_ignore").click().run()
    at.button(key="action_confirm").click().run()
    assert "This needs a reason." in _texts(at)
    assert server.get(f"/api/incidents/{incident['id']}")["state"] == "open"


def test_event_lookup_shows_expectations_incidents_and_signals(seeded: dict[str, str], dashboard_env: None) -> None:
    at = _page("screens/event.py", id=seeded["healthy"])
    assert "healthy" in _texts(at)
    signals = at.dataframe[0].value
    assert list(signals["signal"]) == ["receipt", "result"]
    at = _page("screens/event.py", id="evt_never_seen")
    assert "Nothing is known about evt_never_seen" in _texts(at)


def test_an_unreachable_api_and_a_bad_token_are_said_clearly(
    server: ServeProcess, monkeypatch: pytest.MonkeyPatch, dashboard_env: None
) -> None:
    monkeypatch.setenv("FULFILLWATCH_DASHBOARD_API_URL", f"http://127.0.0.1:{free_port()}")
    reset_settings()
    at = _app()
    assert "The Fulfillwatch API is unreachable." in at.error[0].value
    monkeypatch.setenv("FULFILLWATCH_DASHBOARD_API_URL", server.api_url)
    monkeypatch.setenv("FULFILLWATCH_API_TOKEN", "wrong-token-wrong-token")
    reset_settings()
    at = _app()
    assert "The API token was refused." in at.error[0].value


USERS_FILE = ROOT / "tests" / "fixtures" / "dashboard-users.toml"  # alice@example.com


def test_without_demo_mode_a_per_user_sign_in_is_required(
    server: ServeProcess, seeded: dict[str, str], monkeypatch: pytest.MonkeyPatch, dashboard_env: None
) -> None:
    monkeypatch.delenv("FULFILLWATCH_DASHBOARD_DEMO")
    monkeypatch.setenv("FULFILLWATCH_API_TOKEN", server.token_for("dashboard"))  # admin + act_as
    monkeypatch.setenv("FULFILLWATCH_DASHBOARD_USERS_FILE", str(USERS_FILE))
    reset_settings()
    at = _app()
    assert not at.metric  # nothing shown before signing in
    at.text_input[0].input("alice@example.com")
    at.text_input[1].input("nope")
    at.button[0].click().run()
    assert "Wrong user name or password." in at.error[0].value
    at.text_input[1].input("correct-horse-battery")
    at.button[0].click().run()
    assert [metric.label for metric in at.metric][:1] == ["Open incidents"]
    # What she does is recorded as hers, through the dashboard's token.
    incident = server.incident_for(seeded["skipped"])
    assert incident is not None
    for key, value in {"id": incident["id"]}.items():
        at.query_params[key] = value
    at.switch_page("screens/incident.py").run()
    at.button(key="action_note").click().run()
    at.text_input(key="action_text").input("looking into it")
    at.button(key="action_confirm").click().run()
    note = server.get(f"/api/incidents/{incident['id']}")["timeline"][-1]
    assert (note["type"], note["actor"], note["details"]["via"]) == ("note", "alice@example.com", "dashboard")


def test_sign_in_attempts_are_rate_limited(monkeypatch: pytest.MonkeyPatch, dashboard_env: None) -> None:
    monkeypatch.delenv("FULFILLWATCH_DASHBOARD_DEMO")
    monkeypatch.setenv("FULFILLWATCH_DASHBOARD_USERS_FILE", str(USERS_FILE))
    monkeypatch.setenv("FULFILLWATCH_DASHBOARD_LOGIN_ATTEMPTS_PER_USER", "3")
    monkeypatch.setenv("FULFILLWATCH_DASHBOARD_LOGIN_WINDOW_S", "3600")  # a throttle of this test's own
    reset_settings()
    at = _app()
    for _ in range(3):
        at.text_input[0].input("alice@example.com")
        at.text_input[1].input("guess")
        at.button[0].click().run()
        assert "Wrong user name or password." in at.error[0].value
    at.text_input[1].input("correct-horse-battery")  # even the right password waits now
    at.button[0].click().run()
    assert "Too many failed sign-ins" in at.error[0].value
    assert not at.metric


def test_a_proxy_header_counts_only_from_the_configured_proxy(
    monkeypatch: pytest.MonkeyPatch, dashboard_env: None
) -> None:
    from fulfillwatch.dashboard.auth import proxy_user

    headers = {"X-Forwarded-Email": "mallory@example.com"}
    assert proxy_user(headers, "127.0.0.1", None, []) is None  # not configured: ignored
    assert proxy_user(headers, "203.0.113.9", "X-Forwarded-Email", ["10.0.0.0/8"]) is None  # not the proxy
    assert proxy_user(headers, "10.1.2.3", "X-Forwarded-Email", ["10.0.0.0/8"]) == "mallory@example.com"
    # In the app: configured, but this session does not come from the proxy → the sign-in form.
    monkeypatch.delenv("FULFILLWATCH_DASHBOARD_DEMO")
    monkeypatch.setenv("FULFILLWATCH_DASHBOARD_USERS_FILE", str(USERS_FILE))
    monkeypatch.setenv("FULFILLWATCH_DASHBOARD_TRUSTED_PROXY_HEADER", "X-Forwarded-Email")
    monkeypatch.setenv("FULFILLWATCH_DASHBOARD_TRUSTED_PROXIES", '["10.0.0.0/8"]')
    reset_settings()
    at = _app()
    assert not at.metric and at.text_input[0].label == "User name"


def test_views_format_what_the_pages_show() -> None:
    assert views.format_duration(None) == "—"
    assert views.format_duration(4.25) == "4.2 s"
    assert views.format_duration(252) == "4 min 12 s"
    assert views.format_duration(7500) == "2 h 5 min"
    assert views.format_amount(2000, "usd") == "20.00 USD"
    assert views.trace_link("http://jaeger/trace/{trace_id}", "abc") == "http://jaeger/trace/abc"
    assert views.trace_link(None, "abc") is None
    assert views.engine_status({"heartbeat_age_s": None}) == (
        False,
        "the engine has never evaluated (no heartbeat yet)",
    )
    healthy, text = views.engine_status({"heartbeat_age_s": 2, "evaluation_lag_s": 1, "stale": False})
    assert healthy and text == "heartbeat 2.0 s ago, evaluation lag 1.0 s"
    assert views.page_count(0, 50) == 1 and views.page_count(101, 50) == 3
    timeline: list[dict[str, Any]] = [
        {"at": "2026-01-01T00:00:00Z", "type": "receipt", "details": {}},
        {"at": "2026-01-01T00:00:01Z", "type": "result", "details": {"outcome": "failure", "error_type": "a.B"}},
        {
            "at": "2026-01-01T00:00:02Z",
            "type": "opened",
            "actor": "system",
            "state": "open",
            "reason": "B: x",
            "details": {},
        },
        {
            "at": "2026-01-01T00:00:03Z",
            "type": "callback_attempt",
            "actor": "system",
            "details": {"attempt": 1, "status": 503},
        },
    ]
    table = views.timeline_table(timeline)
    assert list(table["lane"]) == ["signals", "signals", "incident", "callbacks"]
    assert list(table["what"]) == ["receipt", "result: failure (B)", "opened", "callback #1: HTTP 503"]
    assert list(views.audit_table(timeline)["what"]) == ["opened", "callback #1: HTTP 503"]
    assert views.timeline_chart(table).to_dict()["mark"]["type"] == "circle"
    assert "Not received by the app" in views.KIND_EXPLANATIONS["not_received"]
    record = dict(
        views.stripe_record_fields(
            {
                "created": "2026-12-01T10:00:00+00:00",
                "account": "",
                "amount": 2000,
                "currency": "usd",
                "delivery_failed": True,
            }
        )
    )
    assert record["account"] == "own" and record["amount"] == "20.00 USD"
    assert record["delivery"] == "Stripe reports it failed"
