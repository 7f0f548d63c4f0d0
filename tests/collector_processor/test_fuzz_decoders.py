"""Property tests of everything that turns sender bytes into rows: whatever arrives, the decoders
either refuse the request with a message (:class:`MalformedRequest`) or produce signals that the
store's columns can hold — a value that decodes can never poison an insert shared with others.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from pydantic import ValidationError

from fulfillwatch.collector_processor.otlp import MalformedRequest, decode_json, decode_protobuf
from fulfillwatch.collector_processor.rest_ingest import ReceiptIn, ResultIn
from fulfillwatch.collector_processor.signals import RECEIPT, RESULT, Signal, SignalBatch
from fulfillwatch.instrumentation import vocabulary as v

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
KEYS = [
    v.STRIPE_EVENT_ID,
    v.STRIPE_EVENT_TYPE,
    v.STRIPE_AMOUNT,
    v.STRIPE_EVENT_CREATED,
    v.STRIPE_LIVEMODE,
    v.FULFILLMENT_TIMEOUT_S,
    v.FULFILLMENT_DUE_AT,
    v.FULFILLMENT_ATTEMPT,
    v.FULFILLMENT_OUTCOME,
    v.FULFILLMENT_EFFECT,
    v.ERROR_TYPE,
    "app.anything",
]
huge_ints = st.one_of(st.integers(), st.sampled_from([0, -1, 2**31, 2**32, 2**40, 2**63, 2**64 - 1, 2**70, -(2**70)]))
floats = st.floats(allow_nan=True, allow_infinity=True)
texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
json_texts = st.one_of(texts, st.just("\ud800"), st.just("inf"), st.just("1e400"), st.just("2026-01-01T00:00:00Z"))


def _accepted_or_refused(decode: Any, body: bytes) -> None:
    """Either a clear refusal, or rows every column can hold."""
    try:
        decoded = decode(body, default_timeout_s=1800)
    except MalformedRequest as exc:
        refusal = str(exc)
    else:
        batch = decoded.signal_batch()  # raises if a value could not be stored
        assert batch.rows == batch.table.num_rows
        return
    assert refusal  # says what is wrong


# --- OTLP/JSON ---------------------------------------------------------------------------------

json_values = st.recursive(
    st.one_of(
        st.builds(lambda s: {"stringValue": s}, json_texts),
        st.builds(lambda i: {"intValue": str(i)}, huge_ints),
        st.builds(lambda i: {"intValue": i}, huge_ints),
        st.builds(lambda f: {"doubleValue": f}, floats),
        st.builds(lambda b: {"boolValue": b}, st.booleans()),
        st.just({}),
        st.just({"bytesValue": "AAEC"}),
    ),
    lambda inner: st.one_of(
        st.builds(lambda items: {"arrayValue": {"values": items}}, st.lists(inner, max_size=3)),
        st.builds(
            lambda items: {"kvlistValue": {"values": [{"key": f"k{n}", "value": x} for n, x in enumerate(items)]}},
            st.lists(inner, max_size=3),
        ),
    ),
    max_leaves=6,
)
json_spans = st.fixed_dictionaries(
    {
        "traceId": st.one_of(st.just("5b8efff798038103d269b633813fc60c"), texts),
        "spanId": st.one_of(st.just("eee19b7ec3c1b174"), texts),
        "name": st.sampled_from([v.RECEIPT_SPAN, v.RESULT_SPAN, "GET /"]),
        "endTimeUnixNano": st.one_of(huge_ints, floats, texts),
        "attributes": st.lists(
            st.builds(lambda key, value: {"key": key, "value": value}, st.sampled_from(KEYS), json_values), max_size=8
        ),
        "status": st.fixed_dictionaries({"code": st.integers(0, 3), "message": json_texts}),
    }
)


@FUZZ
@given(st.lists(json_spans, max_size=5), json_texts)
def test_otlp_json_decodes_or_refuses(spans: list[dict[str, Any]], service: str) -> None:
    document = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                "scopeSpans": [{"spans": spans}],
            }
        ]
    }
    _accepted_or_refused(decode_json, json.dumps(document).encode())


@FUZZ
@given(st.recursive(st.none() | st.booleans() | huge_ints | texts, lambda x: st.lists(x) | st.dictionaries(texts, x)))
def test_any_json_document_decodes_or_refuses(document: Any) -> None:
    _accepted_or_refused(decode_json, json.dumps(document).encode())


def test_deep_nesting_is_refused_with_a_message() -> None:
    with pytest.raises(MalformedRequest, match="nests too deeply"):
        decode_json(b"[" * 100_000 + b"]" * 100_000, default_timeout_s=1800)


# --- OTLP/protobuf -----------------------------------------------------------------------------

any_values = st.one_of(
    st.builds(lambda s: AnyValue(string_value=s), texts),
    st.builds(lambda i: AnyValue(int_value=i), st.integers(-(2**63), 2**63 - 1)),
    st.builds(lambda f: AnyValue(double_value=f), floats),
    st.builds(lambda b: AnyValue(bool_value=b), st.booleans()),
    st.builds(lambda b: AnyValue(bytes_value=b), st.binary(max_size=8)),
    st.just(AnyValue()),
)
proto_spans = st.builds(
    lambda trace, span, name, end, attributes: Span(
        trace_id=trace,
        span_id=span,
        name=name,
        end_time_unix_nano=end,
        attributes=[KeyValue(key=key, value=value) for key, value in attributes],
    ),
    st.one_of(st.binary(min_size=16, max_size=16), st.binary(max_size=20)),
    st.one_of(st.binary(min_size=8, max_size=8), st.binary(max_size=10)),
    st.sampled_from([v.RECEIPT_SPAN, v.RESULT_SPAN, "other"]),
    st.integers(0, 2**64 - 1),
    st.lists(st.tuples(st.sampled_from(KEYS), any_values), max_size=8),
)


@FUZZ
@given(st.lists(proto_spans, max_size=5))
def test_otlp_protobuf_decodes_or_refuses(spans: list[Span]) -> None:
    resource = ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])
    resource.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="shop")))
    _accepted_or_refused(decode_protobuf, ExportTraceServiceRequest(resource_spans=[resource]).SerializeToString())


@FUZZ
@given(st.binary(max_size=512))
def test_any_bytes_decode_or_are_refused(body: bytes) -> None:
    _accepted_or_refused(decode_protobuf, body)


# --- REST --------------------------------------------------------------------------------------

rest_documents = st.dictionaries(
    st.sampled_from(
        [
            "stripe_event_id",
            "event_type",
            "service",
            "effect",
            "timeout_minutes",
            "amount",
            "currency",
            "livemode",
            "status",
            "attempt",
            "error_message",
        ]
    ),
    st.one_of(json_texts, huge_ints, floats, st.booleans(), st.none(), st.sampled_from(["success", "failed"])),
)


@FUZZ
@given(rest_documents)
def test_rest_models_validate_or_refuse_and_what_they_accept_can_be_stored(document: dict[str, Any]) -> None:
    for model, kind in ((ReceiptIn, RECEIPT), (ResultIn, RESULT)):
        try:
            parsed = model.model_validate_json(json.dumps(document))
        except ValidationError:
            continue
        values = parsed.model_dump()
        signal = Signal(
            "rest_x",
            kind,
            values["stripe_event_id"],
            1_800_000_000_000_000,
            event_type=values.get("event_type") or "",
            amount=values.get("amount"),
            currency=values.get("currency") or "",
            error_message=values.get("error_message") or "",
            attempt=values.get("attempt") or 0,
        )
        assert SignalBatch.of([signal]).rows == 1
