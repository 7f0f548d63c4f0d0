"""The OTLP/HTTP trace receiver: ``POST /v1/traces``.

It follows the OTLP/HTTP contract (``opentelemetry-proto/docs/specification.md``):

* protobuf (``application/x-protobuf``) and OTLP/JSON (``application/json``) on the same path,
  ``Content-Encoding: gzip | deflate``; the response uses the request's content type;
* 200 only after the fulfillment spans are stored; an empty ``partial_success`` when all were
  usable, ``rejected_spans`` + a message when some fulfillment spans were not (including spans
  of a service the sender's ingest key may not write for);
* 400 for a malformed body, or one whose rows the store refused (with a ``google.rpc.Status``
  saying what is wrong, never retried by senders), 413 above the size limit (also after
  decompression), 415 for another content type, 503 + ``Retry-After`` when the store is
  unavailable (senders retry). Authentication, the in-flight budget (429) and the body timeout
  (408) are the :mod:`.ingest_gate`'s, before the body is read.

Decompression, decoding and building the Arrow table run in a small thread pool, not on the
event loop that also serves the API and health probes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import zlib
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)

from .counters import IngestCounters
from .ingest_auth import IngestAccess, IngestKey
from .ingest_gate import STATE_KEY
from .otlp import DecodedBatch, MalformedRequest, decode_json, decode_protobuf
from .responses import JSON, PROTOBUF, media_type, otlp_failure
from .signals import SignalBatch
from .store import StoreUnavailable
from .writer import RejectedBatch, SignalWriter

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


def _success(media: str, batch: DecodedBatch) -> Response:
    if media == JSON:
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


def build_receiver_router(
    writer: SignalWriter,
    counters: IngestCounters,
    settings: ReceiverSettings,
    access: IngestAccess,
    pool: concurrent.futures.Executor,
) -> APIRouter:
    """The ``/v1/traces`` route, decoding in ``pool``, storing through ``writer``."""
    router = APIRouter(tags=["OTLP"])

    def decode(body: bytes, media: str, encoding: str, key: IngestKey | None) -> tuple[DecodedBatch, SignalBatch]:
        """Everything CPU-bound about one request (runs in the pool)."""
        data = _decompress(body, encoding, settings.max_body_bytes)
        decoder = decode_json if media == JSON else decode_protobuf

        def project_of(service: str) -> tuple[str, str]:
            return access.project_for(key, service)

        try:
            decoded = decoder(data, default_timeout_s=settings.default_timeout_s, project_of=project_of)
            return decoded, decoded.signal_batch()
        except MalformedRequest as exc:
            raise _Rejected(400, str(exc), "requests_malformed") from None
        except (ValueError, TypeError, OverflowError, UnicodeError) as exc:  # a value the checks let through
            raise _Rejected(400, f"the spans cannot be stored: {exc}", "requests_malformed") from None

    @router.post(
        "/v1/traces",
        summary="OTLP/HTTP trace export",
        description="Accepts an OTLP ExportTraceServiceRequest (protobuf or JSON) and stores its "
        "fulfillment spans. Other spans are counted and ignored. Needs an ingest key "
        "(`Authorization: Bearer <key>`) unless ingest authentication is off.",
        response_class=Response,
    )
    async def export_traces(request: Request) -> Response:
        media = media_type(request.headers.get("content-type"))
        counters.add(requests=1)
        answer_as = media if media in (PROTOBUF, JSON) else JSON
        try:
            if media not in (PROTOBUF, JSON):
                raise _Rejected(
                    415,
                    f"unsupported Content-Type {media or '(none)'!r}: send {PROTOBUF} or {JSON}",
                    "requests_unsupported",
                )
            body = await request.body()  # read by the gate already, within its limits
            key: IngestKey | None = request.scope.get("state", {}).get(STATE_KEY)
            encoding = request.headers.get("content-encoding", "")
            loop = asyncio.get_running_loop()
            decoded, batch = await loop.run_in_executor(pool, decode, body, media, encoding, key)
            try:
                await writer.write(batch)
            except StoreUnavailable as exc:
                counters.add(requests_store_unavailable=1)
                return otlp_failure(
                    media, 503, f"spans not stored, retry later: {exc}", {"Retry-After": str(RETRY_AFTER_S)}
                )
            except RejectedBatch as exc:
                counters.add(requests_rejected_by_store=1)
                return otlp_failure(media, 400, f"spans not stored, do not retry: {exc}")
        except _Rejected as rejected:
            counters.add(**{rejected.counter: 1})
            return otlp_failure(answer_as, rejected.status, rejected.message)
        counters.add(
            spans_received=decoded.spans,
            signals_stored=batch.rows,
            spans_ignored=decoded.ignored,
            spans_rejected=decoded.rejected,
        )
        return _success(media, decoded)

    return router
