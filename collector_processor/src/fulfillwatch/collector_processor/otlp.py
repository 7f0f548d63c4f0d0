"""Decoding OTLP trace export requests (protobuf and OTLP/JSON) into signals.

Only the two fulfillment span names are converted; every other span is counted and skipped
before its attributes are touched, which is what keeps decoding cheap when an app sends its
whole trace stream. A structurally broken request raises :class:`MalformedRequest` (HTTP 400);
a fulfillment span that is well-formed OTLP but unusable is *rejected* and reported through
``partial_success``.

Each resource's ``service.name`` decides the project its spans count for (``project_of``, see
:mod:`.ingest_auth`); spans of a service the sender may not write for are rejected too.

OTLP/JSON is not the proto3 JSON mapping: ids are hex, enums are integers, 64-bit integers may be
strings or numbers (see ``opentelemetry-proto/docs/specification.md``). That is why the JSON
decoder walks the dict itself instead of calling ``json_format.Parse``, which would read the
hex ids as base64. JSON may also carry what protobuf cannot: lone UTF-16 surrogates (replaced,
so that they cannot fail an insert) and unbounded nesting (refused).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from fulfillwatch.instrumentation import vocabulary as v

from . import otlp_wire
from .ingest_auth import DEFAULT_PROJECT
from .signals import Signal, SignalBatch
from .span_signals import SpanFields, UnusableSpan, signal_from_span

_SERVICE_NAME = "service.name"
_MAX_REJECTION_DETAILS = 5
#: Nesting of arrays/kvlists inside one attribute value (the OTLP/JSON walker recurses).
_MAX_VALUE_DEPTH = 16

#: ``service.name`` → ``(project, "")``, or ``("", why its spans are rejected)``.
ProjectOf = Callable[[str], tuple[str, str]]


def _default_project(service: str) -> tuple[str, str]:
    return DEFAULT_PROJECT, ""


class MalformedRequest(ValueError):
    """The request body is not a valid OTLP trace export request."""


#: Spans converted to Arrow at a time: a big request never holds all its spans as Python
#: objects at once (they cost ~2 KB each; their Arrow rows ~250 bytes).
_CHUNK = 4096


@dataclass
class DecodedBatch:
    """The outcome of decoding one export request: its signals as Arrow tables, and counts."""

    signals: list[Signal] = field(default_factory=list)  # converted, not yet in a chunk
    chunks: list[SignalBatch] = field(default_factory=list)
    spans: int = 0
    ignored: int = 0
    rejections: list[str] = field(default_factory=list)

    def signal_batch(self) -> SignalBatch:
        """Everything decoded, ready for the writer (raises like :func:`~.signals.to_arrow_table`)."""
        self._chunk()
        return SignalBatch.concat(self.chunks)

    def _chunk(self) -> None:
        if self.signals:
            self.chunks.append(SignalBatch.of(self.signals))
            self.signals.clear()

    @property
    def rejected(self) -> int:
        """Fulfillment spans that could not be used."""
        return len(self.rejections)

    def rejection_message(self) -> str:
        """A human-readable summary for ``partial_success.error_message``."""
        if not self.rejections:
            return ""
        shown = "; ".join(self.rejections[:_MAX_REJECTION_DETAILS])
        more = len(self.rejections) - _MAX_REJECTION_DETAILS
        suffix = f"; and {more} more" if more > 0 else ""
        return f"{self.rejected} fulfillment span(s) rejected: {shown}{suffix}"

    def add(self, fields: SpanFields, rules: _Rules, project: str, refusal: str) -> None:
        """Convert one fulfillment span, recording a rejection instead of raising."""
        if refusal:
            self.rejections.append(f"span {fields.span_id or '?'}: {refusal}")
            return
        try:
            self.signals.append(
                signal_from_span(
                    fields, default_timeout_s=rules.default_timeout_s, project=project, now_us=rules.now_us
                )
            )
        except UnusableSpan as exc:
            self.rejections.append(f"span {fields.span_id or '?'}: {exc}")
            return
        if len(self.signals) >= _CHUNK:
            self._chunk()


@dataclass(frozen=True)
class _Rules:
    """What one request is decoded with (read once per request, not per span)."""

    default_timeout_s: float
    project_of: ProjectOf
    now_us: int

    @classmethod
    def make(cls, default_timeout_s: float, project_of: ProjectOf | None) -> _Rules:
        return cls(default_timeout_s, project_of or _default_project, int(time.time() * 1_000_000))


# --- protobuf ----------------------------------------------------------------------------------


def _any_value(value: AnyValue) -> object:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _any_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


def _attributes(key_values: Any) -> dict[str, object]:
    # Most attributes are strings: read string_value first and only ask which field is set
    # (WhichOneof) for the others. This loop is most of the decoding time.
    attributes: dict[str, object] = {}
    for kv in key_values:
        value = kv.value
        text = value.string_value
        attributes[kv.key] = text if text else _any_value(value)
    return attributes


def decode_protobuf(body: bytes, *, default_timeout_s: float, project_of: ProjectOf | None = None) -> DecodedBatch:
    """Decode an ``ExportTraceServiceRequest`` in protobuf encoding."""
    rules = _Rules.make(default_timeout_s, project_of)
    batch = DecodedBatch()
    names = v.FULFILLMENT_SPANS
    try:
        # Span by span (see otlp_wire): the whole request's message tree is never built.
        for resource, spans in otlp_wire.resource_spans(body):
            service = ""
            for kv in resource.attributes:
                if kv.key == _SERVICE_NAME:
                    service = str(_any_value(kv.value) or "")
                    break
            project, refusal = rules.project_of(service)
            for span in spans:
                batch.spans += 1
                name = span.name
                if name not in names:
                    batch.ignored += 1
                    continue
                links = span.links
                link = links[0] if links else None
                status = span.status
                batch.add(
                    SpanFields(  # positional: this loop is the receiver's hot path
                        name,
                        span.trace_id.hex(),
                        span.span_id.hex(),
                        span.end_time_unix_nano,
                        status.code,
                        status.message,
                        _attributes(span.attributes),
                        service,
                        link.trace_id.hex() if link is not None else "",
                        link.span_id.hex() if link is not None else "",
                    ),
                    rules,
                    project,
                    refusal,
                )
    except otlp_wire.WireError as exc:
        raise MalformedRequest(f"the body is not a valid OTLP protobuf ExportTraceServiceRequest: {exc}") from None
    return batch


# --- OTLP/JSON ---------------------------------------------------------------------------------


def _list(container: Mapping[str, Any], key: str, where: str) -> Sequence[Any]:
    value = container.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise MalformedRequest(f"{where}.{key} must be an array")
    return value


def _object(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise MalformedRequest(f"{where} must be an object")
    return value


def _utf8(text: object) -> object:
    """A JSON string as text that encodes to UTF-8 (``\\ud800`` escapes decode to lone
    surrogates, which no column can store)."""
    if isinstance(text, str):
        try:
            text.encode()
        except UnicodeEncodeError:
            return text.encode("utf-8", "replace").decode()
    return text


def _json_any_value(value: object, where: str, depth: int = 0) -> object:
    if not isinstance(value, dict):
        raise MalformedRequest(f"{where} must be an AnyValue object")
    if depth > _MAX_VALUE_DEPTH:
        raise MalformedRequest(f"{where} nests arrays or kvlists deeper than {_MAX_VALUE_DEPTH} levels")
    if "stringValue" in value:
        return _utf8(value["stringValue"])
    if "boolValue" in value:
        return value["boolValue"]
    if "intValue" in value:  # int64: a decimal string or a number
        try:
            return int(value["intValue"])
        except (TypeError, ValueError, OverflowError):
            raise MalformedRequest(f"{where}.intValue is not an integer") from None
    if "doubleValue" in value:
        try:
            return float(value["doubleValue"])
        except (TypeError, ValueError):
            raise MalformedRequest(f"{where}.doubleValue is not a number") from None
    if "arrayValue" in value:
        items = _list(_object(value["arrayValue"], f"{where}.arrayValue"), "values", f"{where}.arrayValue")
        return [_json_any_value(item, f"{where}.arrayValue.values[{i}]", depth + 1) for i, item in enumerate(items)]
    if "kvlistValue" in value:
        container = _object(value["kvlistValue"], f"{where}.kvlistValue")
        return _json_attributes(container, f"{where}.kvlistValue", "values", depth + 1)
    if "bytesValue" in value:
        return str(value["bytesValue"])
    return None


def _json_attributes(
    container: Mapping[str, Any], where: str, key: str = "attributes", depth: int = 0
) -> dict[str, object]:
    attributes: dict[str, object] = {}
    for i, item in enumerate(_list(container, key, where)):
        kv = _object(item, f"{where}.{key}[{i}]")
        name = kv.get("key")
        if not isinstance(name, str):
            raise MalformedRequest(f"{where}.{key}[{i}].key must be a string")
        attributes[str(_utf8(name))] = _json_any_value(kv.get("value", {}), f"{where}.{key}[{i}].value", depth)
    return attributes


def _hex_id(value: object, size: int, where: str, *, required: bool = True) -> str:
    if value in (None, "") and not required:
        return ""
    if not isinstance(value, str) or len(value) != size * 2:
        raise MalformedRequest(f"{where} must be a {size * 2}-character hex string")
    try:
        bytes.fromhex(value)
    except ValueError:
        raise MalformedRequest(f"{where} must be a {size * 2}-character hex string") from None
    return value.lower()


def _json_int(value: object, where: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        raise MalformedRequest(f"{where} must be an integer")
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError, OverflowError):
        raise MalformedRequest(f"{where} must be an integer (a number or a decimal string)") from None


def decode_json(body: bytes, *, default_timeout_s: float, project_of: ProjectOf | None = None) -> DecodedBatch:
    """Decode an ``ExportTraceServiceRequest`` in OTLP/JSON encoding."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedRequest(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise MalformedRequest("the JSON body nests too deeply") from None
    request = _object(document, "the request body")
    rules = _Rules.make(default_timeout_s, project_of)
    batch = DecodedBatch()
    for r, resource_spans in enumerate(_list(request, "resourceSpans", "request")):
        where_r = f"resourceSpans[{r}]"
        resource_spans = _object(resource_spans, where_r)
        resource = _object(resource_spans.get("resource", {}), f"{where_r}.resource")
        service = str(_json_attributes(resource, f"{where_r}.resource").get(_SERVICE_NAME) or "")
        project, refusal = rules.project_of(service)
        for s, scope_spans in enumerate(_list(resource_spans, "scopeSpans", where_r)):
            where_s = f"{where_r}.scopeSpans[{s}]"
            spans = _list(_object(scope_spans, where_s), "spans", where_s)
            batch.spans += len(spans)
            for i, span in enumerate(spans):
                where = f"{where_s}.spans[{i}]"
                span = _object(span, where)
                name = span.get("name", "")
                if not isinstance(name, str) or name not in v.FULFILLMENT_SPANS:
                    batch.ignored += 1
                    continue
                links = _list(span, "links", where)
                link = _object(links[0], f"{where}.links[0]") if links else {}
                status = _object(span.get("status", {}), f"{where}.status")
                batch.add(
                    SpanFields(
                        name=name,
                        trace_id=_hex_id(span.get("traceId"), 16, f"{where}.traceId"),
                        span_id=_hex_id(span.get("spanId"), 8, f"{where}.spanId"),
                        end_time_ns=_json_int(span.get("endTimeUnixNano"), f"{where}.endTimeUnixNano"),
                        status_code=_json_int(status.get("code"), f"{where}.status.code"),
                        status_message=str(_utf8(status.get("message") or "")),
                        attributes=_json_attributes(span, where),
                        service=service,
                        link_trace_id=_hex_id(link.get("traceId"), 16, f"{where}.links[0].traceId", required=False),
                        link_span_id=_hex_id(link.get("spanId"), 8, f"{where}.links[0].spanId", required=False),
                    ),
                    rules,
                    project,
                    refusal,
                )
    return batch
