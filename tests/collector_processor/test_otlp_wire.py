"""The span-by-span walk of a protobuf request reads what a whole-message parse reads: the same
resources and spans in the same order, and it refuses every body the full parse refuses."""

from __future__ import annotations

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from fulfillwatch.collector_processor.otlp_wire import WireError, resource_spans

WALK = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))

names = st.sampled_from(["fulfillment.receipt", "fulfillment.result", "GET /", ""])
spans = st.builds(
    lambda name, span_id, end, attrs: Span(
        name=name,
        span_id=span_id,
        end_time_unix_nano=end,
        attributes=[KeyValue(key=k, value=AnyValue(string_value=val)) for k, val in attrs],
    ),
    names,
    st.binary(max_size=8),
    st.integers(0, 2**64 - 1),
    st.lists(st.tuples(st.text(max_size=5), st.text(max_size=5)), max_size=3),
)
scopes = st.builds(
    lambda name, items, url: ScopeSpans(scope=InstrumentationScope(name=name), spans=items, schema_url=url),
    st.text(max_size=5),
    st.lists(spans, max_size=4),
    st.text(max_size=5),
)
resources = st.builds(
    lambda service, items: ResourceSpans(
        resource=Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=service))]),
        scope_spans=items,
    ),
    st.text(max_size=5),
    st.lists(scopes, max_size=3),
)


def _walked(body: bytes, walk_above: int = 0) -> list[tuple[Resource, list[Span]]]:
    return [(resource, list(items)) for resource, items in resource_spans(body, walk_above=walk_above)]


def _parsed(body: bytes) -> list[tuple[Resource, list[Span]]]:
    request = ExportTraceServiceRequest.FromString(body)
    return [(rs.resource, [span for scope in rs.scope_spans for span in scope.spans]) for rs in request.resource_spans]


@WALK
@given(st.lists(st.lists(resources, max_size=3), min_size=1, max_size=2))
def test_the_walk_reads_what_the_parse_reads(requests: list[list[ResourceSpans]]) -> None:
    # Requests joined: protobuf's merge of two messages, as a sender's encoder may produce.
    body = b"".join(ExportTraceServiceRequest(resource_spans=items).SerializeToString() for items in requests)
    assert _walked(body) == _parsed(body) == _walked(body, walk_above=len(body))  # walked, and parsed whole


@WALK
@given(st.binary(max_size=512))
def test_any_bytes_the_parse_refuses_the_walk_refuses(body: bytes) -> None:
    try:
        expected = _parsed(body)
    except DecodeError:
        with pytest.raises(WireError):
            _walked(body)
        return
    try:
        walked = _walked(body)
    except WireError as exc:
        refusal = str(exc)
    else:
        assert walked == expected
        return
    assert "groups" in refusal  # the one thing the walk refuses and protobuf keeps: unknown groups


def test_a_truncated_request_says_where() -> None:
    body = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[Span(name="x")])])])
    encoded = body.SerializeToString()
    with pytest.raises(WireError, match="past its message"):
        _walked(encoded[:-1])
    with pytest.raises(WireError, match="inside a varint"):
        _walked(b"\x0a\xff")
