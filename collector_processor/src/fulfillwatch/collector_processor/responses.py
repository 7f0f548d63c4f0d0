"""Error answers of the ingest listener, in the form each kind of client reads.

OTLP senders get a ``google.rpc.Status`` in the request's encoding (protobuf or JSON) as the
OTLP/HTTP specification says; REST clients get FastAPI's ``{"detail": ...}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from google.rpc.status_pb2 import Status
from starlette.responses import Response

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
OTLP_PATH = "/v1/traces"
#: google.rpc.Code for the HTTP statuses we answer (informational; senders must not rely on it).
_GRPC_CODES = {400: 3, 401: 16, 403: 7, 408: 4, 413: 8, 415: 3, 429: 8, 503: 14}


def media_type(content_type: str | None) -> str:
    """``application/json`` from ``application/json; charset=utf-8``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def otlp_failure(media: str, status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """An OTLP error answer: ``google.rpc.Status`` as protobuf, or its JSON form."""
    code = _GRPC_CODES.get(status, 2)
    if media == PROTOBUF:
        body = Status(code=code, message=message).SerializeToString()
        return Response(body, status_code=status, media_type=PROTOBUF, headers=dict(headers or {}))
    return Response(
        json.dumps({"code": code, "message": message}), status_code=status, media_type=JSON, headers=dict(headers or {})
    )


def ingest_failure(
    path: str, content_type: str | None, status: int, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    """The error answer for a request to ``path``: OTLP's form on the OTLP route, else REST's."""
    if path == OTLP_PATH:
        return otlp_failure(media_type(content_type), status, message, headers)
    return Response(json.dumps({"detail": message}), status_code=status, media_type=JSON, headers=dict(headers or {}))
