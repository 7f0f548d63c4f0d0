"""API tokens in-process (TestClient on a real chDB store): scopes, and the actor the log records."""

from __future__ import annotations

import pytest

from support.inprocess import InProcessService


def test_a_read_token_reads_but_cannot_act(service: InProcessService) -> None:
    incident = service.open_failed_incident("evt_scope_read")
    reader = service.as_token("reader")
    assert reader.get(f"/api/incidents/{incident['id']}").status_code == 200
    for action, body in (("acknowledge", {}), ("notes", {"text": "x"}), ("reprocess", {}), ("ignore", {"reason": "x"})):
        denied = reader.post(f"/api/incidents/{incident['id']}/{action}", json=body)
        assert denied.status_code == 403 and "lacks the 'operate' scope" in denied.json()["detail"], action
    assert service.api.get(f"/api/incidents/{incident['id']}").json()["state"] == "open"


def test_an_operate_token_acts_on_one_incident_but_cannot_bulk_reprocess(service: InProcessService) -> None:
    incident = service.open_failed_incident("evt_scope_operate")
    alice = service.as_token("alice")
    assert alice.post(f"/api/incidents/{incident['id']}/acknowledge", json={"reason": "on it"}).status_code == 200
    bulk = alice.post("/api/reprocess", json={"filter": {"all": True}, "dry_run": True})
    assert bulk.status_code == 403 and "admin" in bulk.json()["detail"]


def test_the_actor_is_the_token_whatever_a_header_claims(service: InProcessService) -> None:
    incident = service.open_failed_incident("evt_scope_actor")
    bob = service.as_token("bob", **{"X-Fulfillwatch-Actor": "alice@security (CISO)"})
    assert bob.post(f"/api/incidents/{incident['id']}/notes", json={"text": "checked"}).status_code == 200
    note = service.api.get(f"/api/incidents/{incident['id']}").json()["timeline"][-1]
    assert (note["type"], note["actor"]) == ("note", "bob")


def test_only_an_act_as_token_may_name_a_person(service: InProcessService) -> None:
    incident = service.open_failed_incident("evt_scope_act_as")
    claimed = service.as_token("alice", **{"X-Fulfillwatch-User": "ciso@example.com"})
    refused = claimed.post(f"/api/incidents/{incident['id']}/notes", json={"text": "x"})
    assert refused.status_code == 403 and "act_as" in refused.json()["detail"]
    dashboard = service.as_token("dashboard", **{"X-Fulfillwatch-User": "carol@example.com"})
    assert dashboard.post(f"/api/incidents/{incident['id']}/notes", json={"text": "on it"}).status_code == 200
    note = service.api.get(f"/api/incidents/{incident['id']}").json()["timeline"][-1]
    assert (note["actor"], note["details"]["via"]) == ("carol@example.com", "dashboard")


def test_bulk_reprocess_without_a_filter_is_refused(service: InProcessService) -> None:
    service.open_failed_incident("evt_scope_bulk")
    admin = service.as_token("dashboard")
    refused = admin.post("/api/reprocess", json={"dry_run": True})
    assert refused.status_code == 422 and "all" in refused.json()["detail"]
    everything = admin.post("/api/reprocess", json={"filter": {"all": True}, "dry_run": True})
    assert everything.status_code == 200 and everything.json()["count"] >= 1


@pytest.mark.parametrize("token", [None, "not-a-token-not-a-token"])
def test_no_or_a_wrong_token_is_refused(service: InProcessService, token: str | None) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = service.api.get("/api/incidents", headers=headers or {"Authorization": ""})
    assert response.status_code == 401
