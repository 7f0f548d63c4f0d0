"""Signing of reprocess callbacks and the app-side repair helpers (in-process, real libraries)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

import fulfillwatch.instrumentation as fw
from fulfillwatch.collector_processor.identity import ExpectationIdentity
from fulfillwatch.incident_engine.delivery.reprocess import DispatchJob
from fulfillwatch.incident_engine.delivery.signing import signed_request
from fulfillwatch.instrumentation import vocabulary as v
from fulfillwatch.instrumentation.repair import (
    InMemorySeenReplayIds,
    InvalidSignature,
    MalformedRepairRequest,
    RepairRequest,
    ReplayedRequest,
    TimestampOutsideTolerance,
    handle_repair_request,
    verify_repair_request,
    verify_signature,
)
from support.otlp import recorded_spans

_VECTORS_FILE = (
    Path(__file__).resolve().parents[1] / "fixtures" / "signature-vectors" / "standard-webhooks-vectors.json"
)
VECTORS = json.loads(_VECTORS_FILE.read_text())["vectors"]
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the vectors' secret
OTHER_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"


def _callback(secrets: list[str], replay_id: str = "rpl_test1", **overrides: Any) -> tuple[bytes, dict[str, str]]:
    job = DispatchJob(
        incident_id="inc_1",
        replay_id=replay_id,
        identity=ExpectationIdentity.of("evt_1", "invoice.paid", "invoice.paid", "shop"),
        kind="result_failed",
        requested_by="api:alice",
        reason="customer called",
        requested_at=datetime.now(timezone.utc),
    )
    return signed_request(replay_id, {**job.body(1), **overrides}, secrets)


@pytest.mark.parametrize("vector", VECTORS, ids=[vector["name"] for vector in VECTORS])
def test_official_standard_webhooks_vectors(vector: dict[str, Any]) -> None:
    moment = datetime.fromtimestamp(vector["timestamp"], timezone.utc)
    headers = {"webhook-id": vector["msg_id"], "webhook-timestamp": str(vector["timestamp"])}
    if vector["expect"] == "valid":
        signature = Webhook(vector["secret"]).sign(vector["msg_id"], moment, vector["payload"])
        assert signature == vector["expected_signature"]  # the library our signer uses
        headers["webhook-signature"] = signature
        assert verify_signature(headers, vector["payload"], vector["secret"], now=moment)[0] == vector["msg_id"]
    else:
        headers["webhook-signature"] = vector["webhook_signature"]
        with pytest.raises(InvalidSignature):
            verify_signature(headers, vector["payload"], vector["secret"], now=moment)


def test_a_callback_verifies_with_the_third_party_library_and_with_ours() -> None:
    body, headers = _callback([SECRET])
    assert headers["webhook-id"] == "rpl_test1"
    assert Webhook(SECRET).verify(body, headers)["replay_id"] == "rpl_test1"
    request = verify_repair_request(headers, body, [SECRET])
    assert (request.replay_id, request.stripe_event_id, request.requested_by) == ("rpl_test1", "evt_1", "api:alice")


def test_rotation_every_active_secret_signs_and_either_verifies() -> None:
    body, headers = _callback([SECRET, OTHER_SECRET])
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (SECRET, OTHER_SECRET):
        verify_repair_request(headers, body, [secret])  # an app mid-rotation knows one of them
        Webhook(secret).verify(body, headers)
    verify_repair_request(headers, body, [OTHER_SECRET, SECRET])


def test_a_tampered_body_is_rejected() -> None:
    body, headers = _callback([SECRET])
    tampered = body.replace(b'"evt_1"', b'"evt_2"')
    with pytest.raises(InvalidSignature):
        verify_repair_request(headers, tampered, [SECRET])
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(tampered, headers)


def test_a_wrong_secret_is_rejected() -> None:
    body, headers = _callback([SECRET])
    with pytest.raises(InvalidSignature):
        verify_repair_request(headers, body, [OTHER_SECRET])


def test_an_old_or_future_timestamp_is_rejected() -> None:
    for offset in (timedelta(minutes=-6), timedelta(minutes=6)):
        old = datetime.now(timezone.utc) + offset
        body, headers = signed_request("rpl_old", json.loads(_callback([SECRET], "rpl_old")[0]), [SECRET], now=old)
        with pytest.raises(TimestampOutsideTolerance):
            verify_repair_request(headers, body, [SECRET])


def test_a_replayed_webhook_id_is_rejected() -> None:
    seen = InMemorySeenReplayIds()
    body, headers = _callback([SECRET])
    verify_repair_request(headers, body, [SECRET], seen=seen)
    with pytest.raises(ReplayedRequest):
        verify_repair_request(headers, body, [SECRET], seen=seen)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda h: h.pop("webhook-signature"), "missing"),
        (lambda h: h.update({"webhook-timestamp": "yesterday"}), "not a Unix time"),
        (lambda h: h.update({"webhook-signature": "garbage v1,"}), None),
    ],
)
def test_broken_headers_are_rejected_with_a_message(mutate: Any, message: str | None) -> None:
    body, headers = _callback([SECRET])
    mutate(headers)
    with pytest.raises((MalformedRepairRequest, InvalidSignature), match=message):
        verify_repair_request(headers, body, [SECRET])


def test_a_body_whose_replay_id_differs_from_the_header_is_malformed() -> None:
    body, _ = _callback([SECRET], replay_id="rpl_a")
    forged_body, forged = signed_request("rpl_b", json.loads(body), [SECRET])  # signed, but ids disagree
    with pytest.raises(MalformedRepairRequest, match="differs"):
        verify_repair_request(forged, forged_body, [SECRET])


def test_the_handler_records_the_repair_as_a_result_carrying_the_replay_id() -> None:
    seen = InMemorySeenReplayIds()
    calls: list[RepairRequest] = []
    with recorded_spans() as spans:
        body, headers = _callback([SECRET], replay_id="rpl_ok")
        response = handle_repair_request(headers, body, calls.append, [SECRET], seen=seen)
        assert (response.status_code, response.body["status"]) == (200, "repaired")
        assert handle_repair_request(headers, body, calls.append, [SECRET], seen=seen).body["status"] == "duplicate"

        def broken(request: RepairRequest) -> None:
            raise LookupError("tenant still missing")

        body, headers = _callback([SECRET], replay_id="rpl_bad")
        failed = handle_repair_request(headers, body, broken, [SECRET], seen=seen)
        assert failed.status_code == 500 and failed.body["error_type"] == "LookupError"
        retried = handle_repair_request(headers, body, calls.append, [SECRET], seen=seen)  # allowed: it failed
        assert retried.status_code == 200
        rejected = handle_repair_request(headers, body.replace(b"evt_1", b"evt_9"), calls.append, [SECRET])
        assert rejected.status_code == 401
        finished = spans.get_finished_spans()
    assert [request.replay_id for request in calls] == ["rpl_ok", "rpl_bad"]
    results = [(s.attributes[v.FULFILLMENT_REPLAY_ID], s.attributes[v.FULFILLMENT_OUTCOME]) for s in finished]
    assert results == [("rpl_ok", "success"), ("rpl_bad", "failure"), ("rpl_bad", "success")]
    assert all(s.attributes[v.STRIPE_EVENT_ID] == "evt_1" for s in finished)
    fw.force_flush()
