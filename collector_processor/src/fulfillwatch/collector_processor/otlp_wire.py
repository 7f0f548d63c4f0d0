"""An ``ExportTraceServiceRequest`` in protobuf encoding, a big one read one span at a time.

Parsing a whole 20 MiB request builds its message tree at once (about 70 MiB for 120,000
spans), and the tree lives until the last span is converted: with the request's bytes and its
Arrow table, that was most of ``serve``'s peak memory under big batches. So for a body above
:data:`WALK_ABOVE_BYTES` the receiver walks the protobuf wire format
(https://protobuf.dev/programming-guides/encoding/) down to the spans itself — three levels:
request → ``ResourceSpans`` → ``ScopeSpans`` — and parses each span on its own from its bytes;
the resource and scope messages are parsed whole (they are small). Smaller bodies, nearly all
of them, are parsed whole: the walk runs in Python and costs CPU per span.
Everything the full parse checked is still checked: a truncated field, a length past the end,
a malformed span, resource or scope, a ``schema_url`` that is not UTF-8.

Field numbers are ``opentelemetry-proto``'s (``trace/v1/trace.proto``,
``collector/trace/v1/trace_service.proto``). Unknown fields are skipped like protobuf skips
them, except groups (wire types 3 and 4, deprecated, never used by OTLP), which are refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

# ExportTraceServiceRequest
_RESOURCE_SPANS = 1
# ResourceSpans and ScopeSpans alike: 1 = resource / scope, 2 = scope_spans / spans, 3 = schema_url
_HEAD, _ITEMS, _SCHEMA_URL = 1, 2, 3

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
#: Bodies up to this size are parsed whole: an exporter's usual batch (512-2,048 spans, well under
#: 1 MiB) costs a few MiB that way, and walking it in Python cost the receiver about a quarter
#: of its throughput (benchmarks/bench_ingest.py, docs/BENCHMARKS.md).
WALK_ABOVE_BYTES = 4 * 1024 * 1024
#: A field's key is its number (at most 2^29 - 1) and wire type in 32 bits.
_MAX_KEY = 2**32 - 1
_Message = TypeVar("_Message", bound=Message)


class WireError(ValueError):
    """The bytes are not a well-formed protobuf encoding of the request."""


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while pos < end:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireError(f"a varint at byte {pos} is longer than 10 bytes")
    raise WireError(f"the body ends inside a varint at byte {pos}")


def _fields(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """``(field number, start, end)`` of each length-delimited field of the message in
    ``data[start:end]``; fields of other wire types are skipped."""
    pos = start
    while pos < end:
        key, pos = _varint(data, pos, end)
        number, wire_type = key >> 3, key & 7
        if number == 0 or key > _MAX_KEY:
            raise WireError(f"field number {number} at byte {pos} is out of range (1 to 2^29 - 1)")
        if wire_type == _LEN:
            length, pos = _varint(data, pos, end)
            if length > end - pos:
                raise WireError(f"field {number} at byte {pos} runs {length - (end - pos)} bytes past its message")
            yield number, pos, pos + length
            pos += length
        elif wire_type == _VARINT:
            _, pos = _varint(data, pos, end)
        elif wire_type in (_I64, _I32):
            pos += 8 if wire_type == _I64 else 4
            if pos > end:
                raise WireError(f"field {number} ends past its message")
        else:
            raise WireError(f"field {number} has wire type {wire_type} (groups are not used by OTLP)")


def _text(data: bytes, start: int, end: int) -> None:
    try:
        data[start:end].decode()
    except UnicodeDecodeError as exc:
        raise WireError(f"a schema_url is not valid UTF-8: {exc}") from None


def _parsed(message_type: type[_Message], parts: list[bytes], where: str = "") -> _Message:
    """The message of ``parts``: a message field seen more than once is merged, which is what
    parsing its occurrences joined does. ``where`` says where it was, for the error."""
    try:
        return message_type.FromString(b"".join(parts))
    except DecodeError as exc:
        raise WireError(f"a {message_type.__name__}{where} is malformed: {exc}") from None


def resource_spans(body: bytes, *, walk_above: int = WALK_ABOVE_BYTES) -> Iterator[tuple[Resource, Iterator[Span]]]:
    """Each ``ResourceSpans`` of the request: its resource, and its spans (every scope's, in
    order) — parsed one at a time as the iterator is advanced when the body is larger than
    ``walk_above`` bytes, all at once otherwise. Raises :class:`WireError`."""
    if len(body) <= walk_above:
        for item in _parsed(ExportTraceServiceRequest, [body]).resource_spans:
            yield item.resource, (span for scope in item.scope_spans for span in scope.spans)
        return
    for number, start, end in _fields(body, 0, len(body)):
        if number != _RESOURCE_SPANS:
            continue
        heads: list[bytes] = []
        scopes: list[tuple[int, int]] = []
        for inner, inner_start, inner_end in _fields(body, start, end):
            if inner == _HEAD:
                heads.append(body[inner_start:inner_end])
            elif inner == _ITEMS:
                scopes.append((inner_start, inner_end))
            elif inner == _SCHEMA_URL:
                _text(body, inner_start, inner_end)
        yield _parsed(Resource, heads), _spans(body, scopes)


def _spans(body: bytes, scopes: list[tuple[int, int]]) -> Iterator[Span]:
    for scope_start, scope_end in scopes:
        scope_parts: list[bytes] = []
        for number, start, end in _fields(body, scope_start, scope_end):
            if number == _ITEMS:
                yield _parsed(Span, [body[start:end]], f" at byte {start}")
            elif number == _HEAD:
                scope_parts.append(body[start:end])
            elif number == _SCHEMA_URL:
                _text(body, start, end)
        _parsed(InstrumentationScope, scope_parts)
