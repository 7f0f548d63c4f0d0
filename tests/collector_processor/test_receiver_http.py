"""The OTLP/HTTP receiver of a real ``fulfillwatch serve``: formats, errors, limits."""

from __future__ import annotations

import gzip
import json
import zlib

import httpx
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

import fulfillwatch.instrumentation as fw
from support.otlp import PROTOBUF, encode, recorded_spans
from support.serve import ServeProcess, wait_for

MIB = 1024 * 1024


def _batch(prefix: str, count: int = 2) -> bytes:
    with recorded_spans() as spans:
        for n in range(count):
            fw.record_receipt(f"evt_{prefix}{n}", event_type="invoice.paid")
    return encode(spans.get_finished_spans())


def _json_span(name: str, span_id: str, attributes: dict[str, str]) -> dict:
    return {
        "traceId": "5B8EFFF798038103D269B633813FC60C",
        "spanId": span_id,
        "name": name,
        "startTimeUnixNano": "1764000000000000000",
        "endTimeUnixNano": 1764000000500000000,
        "kind": 1,
        "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attributes.items()],
    }


def _json_request(*spans: dict) -> bytes:
    return json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-app"}}]},
                    "scopeSpans": [{"scope": {"name": "hand-written"}, "spans": list(spans)}],
                }
            ]
        }
    ).encode()


def _status(response: httpx.Response) -> str:
    """The error message, from a google.rpc.Status (protobuf) or its JSON form."""
    if response.headers["content-type"].startswith(PROTOBUF):
        return Status.FromString(response.content).message
    return str(response.json()["message"])


def _assert_still_serving(server: ServeProcess, prefix: str) -> None:
    assert server.post_spans(_batch(prefix + "ok", 1)).status_code == 200
    assert httpx.get(f"{server.api_url}/healthz").status_code == 200


def test_protobuf_batch_is_stored(server: ServeProcess, prefix: str) -> None:
    response = server.post_spans(_batch(prefix))
    assert response.status_code == 200
    assert response.headers["content-type"] == PROTOBUF
    assert not ExportTraceServiceResponse.FromString(response.content).HasField("partial_success")
    event = server.get(f"/api/events/evt_{prefix}0")
    assert [s["signal"] for s in event["signals"]] == ["receipt"]


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
def test_compressed_bodies_are_accepted(server: ServeProcess, prefix: str, encoding: str) -> None:
    body = _batch(prefix, 1)
    if encoding == "gzip":
        compressed = gzip.compress(body)
    elif encoding == "deflate":
        compressed = zlib.compress(body)
    else:
        squeezer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        compressed = squeezer.compress(body) + squeezer.flush()
    header = "deflate" if encoding == "raw-deflate" else encoding
    assert server.post_spans(compressed, content_encoding=header).status_code == 200
    assert server.get(f"/api/events/evt_{prefix}0")["signals"]


def test_otlp_json_with_hex_ids_is_stored(server: ServeProcess, prefix: str) -> None:
    body = _json_request(
        _json_span(
            "fulfillment.receipt",
            "EEE19B7EC3C1B174",
            {"stripe.event.id": f"evt_{prefix}", "stripe.event.type": "invoice.paid"},
        ),
        _json_span("GET /health", "EEE19B7EC3C1B175", {}),
    )
    response = server.post_spans(body, "application/json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    [signal] = server.get(f"/api/events/evt_{prefix}")["signals"]
    assert signal["trace_id"] == "5b8efff798038103d269b633813fc60c"  # hex, not base64
    assert signal["span_id"] == "eee19b7ec3c1b174"
    assert signal["service"] == "json-app"


def test_unusable_fulfillment_spans_are_reported_as_partial_success(server: ServeProcess, prefix: str) -> None:
    body = _json_request(
        _json_span("fulfillment.result", "0000000000000001", {"fulfillment.outcome": "success"}),
        _json_span(
            "fulfillment.result",
            "0000000000000002",
            {"stripe.event.id": f"evt_{prefix}", "fulfillment.outcome": "maybe"},
        ),
        _json_span(
            "fulfillment.result",
            "0000000000000003",
            {"stripe.event.id": f"evt_{prefix}", "fulfillment.outcome": "success"},
        ),
    )
    response = server.post_spans(body, "application/json")
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "2"
    assert "no stripe.event.id" in partial["errorMessage"]
    assert "fulfillment.outcome must be one of" in partial["errorMessage"]
    assert len(server.get(f"/api/events/evt_{prefix}")["signals"]) == 1

    with recorded_spans() as spans:
        fw.record_result("", "success")  # logged and dropped by the library: build one by hand
    tracer_body = _json_request(_json_span("fulfillment.receipt", "0000000000000004", {}))
    response = server.post_spans(tracer_body, "application/json")
    assert response.json()["partialSuccess"]["rejectedSpans"] == "1"
    assert not spans.get_finished_spans()


@pytest.mark.parametrize(
    ("body", "content_type", "headers", "status", "message"),
    [
        (b"\xff\xff\xff\xff", PROTOBUF, {}, 400, "not a valid OTLP protobuf"),
        (b"{not json", "application/json", {}, 400, "not valid JSON"),
        (b'{"resourceSpans": {}}', "application/json", {}, 400, "resourceSpans must be an array"),
        (
            _json_request({**_json_span("fulfillment.receipt", "xyz", {}), "spanId": "xyz"}),
            "application/json",
            {},
            400,
            "spanId must be a 16-character hex string",
        ),
        (b"definitely not gzip", PROTOBUF, {"content_encoding": "gzip"}, 400, "not a valid gzip stream"),
        (gzip.compress(b"x" * 1000)[:-8], PROTOBUF, {"content_encoding": "gzip"}, 400, "truncated"),
        (b"abc", PROTOBUF, {"content_encoding": "br"}, 415, "unsupported Content-Encoding"),
        (b"abc", "text/plain", {}, 415, "unsupported Content-Type"),
    ],
    ids=["protobuf", "json", "json-shape", "json-id", "gzip", "gzip-truncated", "encoding", "content-type"],
)
def test_malformed_requests_get_a_4xx_with_a_message(
    server: ServeProcess,
    prefix: str,
    body: bytes,
    content_type: str,
    headers: dict[str, str],
    status: int,
    message: str,
) -> None:
    response = server.post_spans(body, content_type, **headers)
    assert response.status_code == status
    assert message in _status(response)
    _assert_still_serving(server, prefix)


def test_bodies_over_20_mib_get_413_before_and_after_decompression(server: ServeProcess, prefix: str) -> None:
    too_big = b"\x00" * (20 * MIB + 1)
    response = server.post_spans(too_big)
    assert response.status_code == 413
    assert "exceeds" in _status(response)
    bomb = gzip.compress(b"\x00" * (21 * MIB))  # ~21 KiB on the wire
    assert len(bomb) < MIB
    response = server.post_spans(bomb, content_encoding="gzip")
    assert response.status_code == 413
    assert "decompressed" in _status(response)
    _assert_still_serving(server, prefix)


def test_ingest_counters_count_ignored_spans(server: ServeProcess, prefix: str) -> None:
    before = server.get("/api/health")["ingest"]
    body = _json_request(*(_json_span(f"GET /{n}", f"{n:016x}", {}) for n in range(5)))
    assert server.post_spans(body, "application/json").status_code == 200
    after = wait_for(
        lambda: (h := server.get("/api/health")["ingest"])["spans_ignored"] >= before["spans_ignored"] + 5 and h,
        timeout=5,
        what="counters",
    )
    assert after["spans_received"] - before["spans_received"] == 5
