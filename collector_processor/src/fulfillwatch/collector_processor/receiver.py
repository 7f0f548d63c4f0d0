"""The OTLP/HTTP trace receiver: ``POST /v1/traces``.

It follows the OTLP/HTTP contract (``opentelemetry-proto/docs/specification.md``):

* protobuf (``application/x-protobuf``) and OTLP/JSON (``application/json``) on the same path,
  ``Content-Encoding: gzip | deflate``; the response uses the request's content type;
* 200 only after the fulfillment spans are stored; an empty ``partial_success`` when all were
  usable, ``rejected_spans`` + a message when some fulfillment spans were not;
* 400 for a malformed body (with a ``google.rpc.Status`` saying what is wrong, never retried by
  senders), 413 above the size limit (also after decompression), 415 for another content type,
  503 + ``Retry-After`` when the store is unavailable (senders retry).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)

from .counters import IngestCounters
from .otlp import DecodedBatch, MalformedRequest, decode_json, decode_protobuf
from .store import StoreUnavailable
from .writer import SignalWriter

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
#: OTLP's recommended default limit, applied to the body before and after decompression.
DEFAULT_MAX_BODY_BYTES = 20 * 1024 * 1024
#: Seconds an OTLP sender is asked to wait before retrying when the store is down.
RETRY_AFTER_S = 5


@dataclass(frozen=True)
class ReceiverSettings:
    """Limits and defaults of the receiver."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: Deadline for receipts that carry neither ``fulfillment.timeout_s`` nor ``due_at``.
    default_timeout_s: float = 1800.0


class _Rejected(Exception):
    def __init__(self, status: int, message: str, counter: str) -> None:
        super().__init__(message)
        self.status, self.message, self.counter = status, message, counter


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def _read_body(request: Request, limit: int) -> bytes:
    # Read incrementally so an oversized upload is refused without buffering all of it.
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _Rejected(413, f"the request body exceeds {limit} bytes", "requests_too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _Rejected(413, f"the request body exceeds {limit} bytes", "requests_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity", "none"):
        return body
    if encoding == "gzip":
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        # HTTP "deflate" is zlib-wrapped; some senders send raw deflate. Auto-detect the header.
        zlib_header = len(body) >= 2 and (body[0] & 0x0F) == 8 and (body[0] << 8 | body[1]) % 31 == 0
        raw = not zlib_header
        decompressor = zlib.decompressobj(-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
    else:
        raise _Rejected(
            415, f"unsupported Content-Encoding {encoding!r}: use gzip, deflate or none", "requests_unsupported"
        )
    try:
        data = decompressor.decompress(body, limit + 1)
        if len(data) > limit or decompressor.unconsumed_tail:
            raise _Rejected(413, f"the decompressed request body exceeds {limit} bytes", "requests_too_large")
        data += decompressor.flush()
    except zlib.error as exc:
        raise _Rejected(400, f"the body is not a valid {encoding} stream: {exc}", "requests_malformed") from None
    if not decompressor.eof:
        raise _Rejected(400, f"the {encoding} stream is truncated", "requests_malformed")
    return data


def _success(media_type: str, batch: DecodedBatch) -> Response:
    if media_type == JSON:
        payload: dict[str, object] = {}
        if batch.rejections:
            # int64 fields are strings in proto3 JSON.
            payload["partialSuccess"] = {
                "rejectedSpans": str(batch.rejected),
                "errorMessage": batch.rejection_message(),
            }
        return Response(json.dumps(payload), media_type=JSON)
    response = ExportTraceServiceResponse()
    if batch.rejections:
        response.partial_success.CopyFrom(
            ExportTracePartialSuccess(rejected_spans=batch.rejected, error_message=batch.rejection_message())
        )
    return Response(response.SerializeToString(), media_type=PROTOBUF)


def _failure(media_type: str, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    if media_type == PROTOBUF:
        body = Status(code=_GRPC_CODES.get(status, 2), message=message).SerializeToString()
        return Response(body, status_code=status, media_type=PROTOBUF, headers=headers)
    payload = {"code": _GRPC_CODES.get(status, 2), "message": message}
    return Response(json.dumps(payload), status_code=status, media_type=JSON, headers=headers)


# google.rpc.Code for the HTTP statuses we answer (informational; senders must not rely on it).
_GRPC_CODES = {400: 3, 413: 8, 415: 3, 503: 14}


def build_receiver_router(writer: SignalWriter, counters: IngestCounters, settings: ReceiverSettings) -> APIRouter:
    """The ``/v1/traces`` route, storing through ``writer`` and counting in ``counters``."""
    router = APIRouter(tags=["OTLP"])

    @router.post(
        "/v1/traces",
        summary="OTLP/HTTP trace export",
        description="Accepts an OTLP ExportTraceServiceRequest (protobuf or JSON) and stores its "
        "fulfillment spans. Other spans are counted and ignored.",
        response_class=Response,
    )
    async def export_traces(request: Request) -> Response:
        media_type = _media_type(request)
        counters.add(requests=1)
        try:
            if media_type not in (PROTOBUF, JSON):
                raise _Rejected(
                    415,
                    f"unsupported Content-Type {media_type or '(none)'!r}: send {PROTOBUF} or {JSON}",
                    "requests_unsupported",
                )
            limit = settings.max_body_bytes
            body = _decompress(await _read_body(request, limit), request.headers.get("content-encoding", ""), limit)
            decode = decode_json if media_type == JSON else decode_protobuf
            try:
                batch = decode(body, default_timeout_s=settings.default_timeout_s)
            except MalformedRequest as exc:
                raise _Rejected(400, str(exc), "requests_malformed") from None
            try:
                await writer.write(batch.signals)
            except StoreUnavailable as exc:
                counters.add(requests_store_unavailable=1)
                return _failure(
                    media_type,
                    503,
                    f"spans not stored, retry later: {exc}",
                    headers={"Retry-After": str(RETRY_AFTER_S)},
                )
        except _Rejected as rejected:
            counters.add(**{rejected.counter: 1})
            return _failure(media_type if media_type in (PROTOBUF, JSON) else JSON, rejected.status, rejected.message)
        counters.add(
            spans_received=batch.spans,
            signals_stored=len(batch.signals),
            spans_ignored=batch.ignored,
            spans_rejected=batch.rejected,
        )
        return _success(media_type, batch)

    return router
