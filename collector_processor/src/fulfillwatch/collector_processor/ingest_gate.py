"""The gate in front of the ingest routes: who is sending, and whether we can take it now.

An ASGI middleware, so that everything here happens from the headers, before a byte of the
body is read (FastAPI would parse a REST body before its dependencies run):

1. **Authentication** — the ingest key of ``Authorization: Bearer`` (401 without a valid one,
   unless ingest auth is off); the key is handed to the route in ``request.state.ingest_key``.
2. **Size** — a declared ``Content-Length`` above the route's limit is refused at once (413);
   a chunked body is counted as it arrives.
3. **In-flight budget** — the bytes of requests being read, decoded and stored at once are
   bounded; beyond it the answer is 429 with ``Retry-After`` (OTLP's throttling contract), so
   memory stays bounded under any number of senders.
4. **Body timeout** — the whole body must arrive within ``body_timeout_s`` (408), so slow or
   stuck clients cannot hold a slot.

The body is then handed to the route in one piece. A client that disconnects mid-upload is
expected, not an error: it is counted and logged as one line, with no traceback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .counters import IngestCounters
from .ingest_auth import IngestAccess, IngestAuthError
from .responses import OTLP_PATH, ingest_failure

_logger = logging.getLogger("fulfillwatch.ingest")
#: Routes behind the gate, and the size limit that applies to each (OTLP: the setting).
REST_PATHS = frozenset({"/v1/receipt", "/v1/result"})
STATE_KEY = "ingest_key"


@dataclass(frozen=True)
class IngestLimits:
    """Limits of the ingest listener."""

    #: OTLP bodies (before and after decompression): OTLP's recommended 20 MiB.
    max_body_bytes: int = 20 * 1024 * 1024
    #: REST bodies: one small JSON document.
    max_rest_body_bytes: int = 64 * 1024
    #: Bytes of requests in progress at once (read, decoded, being stored).
    inflight_bytes: int = 32 * 1024 * 1024
    #: The whole body must arrive within this many seconds.
    body_timeout_s: float = 30.0
    #: What 429 and 503 answers ask senders to wait.
    retry_after_s: int = 5


class ByteBudget:
    """Bytes in flight, bounded; used from the event loop only (no lock needed)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self._last_refusal = 0.0

    def take(self, amount: int) -> bool:
        """Reserve ``amount`` bytes; ``False`` (and nothing reserved) when they do not fit."""
        if self.in_use + amount > self.limit and self.in_use > 0:
            self._last_refusal = time.monotonic()
            return False
        self.in_use += amount
        return True

    def give_back(self, amount: int) -> None:
        """Release a reservation."""
        self.in_use = max(0, self.in_use - amount)

    def throttled_within(self, seconds: float) -> bool:
        """Whether a request was refused for lack of budget in the last ``seconds``."""
        return self._last_refusal > 0 and time.monotonic() - self._last_refusal < seconds


class _Refused(Exception):
    def __init__(self, status: int, message: str, counter: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.counter, self.headers = status, message, counter, headers or {}


class _Disconnected(Exception):
    pass


class IngestGate:
    """ASGI middleware guarding ``POST /v1/traces``, ``/v1/receipt`` and ``/v1/result``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        access: IngestAccess,
        limits: IngestLimits,
        counters: IngestCounters,
        budget: ByteBudget,
    ) -> None:
        self.app = app
        self.access = access
        self.limits = limits
        self.counters = counters
        self.budget = budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or scope.get("method") != "POST" or (path != OTLP_PATH and path not in REST_PATHS):
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        limit = self.limits.max_body_bytes if path == OTLP_PATH else self.limits.max_rest_body_bytes
        reserved = 0
        try:
            key = self.access.authenticate(headers.get("authorization"))
            reserved = self._reserve(headers.get("content-length"), limit)
            body = await self._read_body(receive, limit)
        except IngestAuthError as exc:
            self.counters.add(requests=1, requests_unauthorized=1)
            await ingest_failure(
                path, headers.get("content-type"), exc.status, exc.message, {"WWW-Authenticate": "Bearer"}
            )(scope, receive, send)
            return
        except _Refused as refused:
            self.budget.give_back(reserved)
            self.counters.add(requests=1, **{refused.counter: 1})
            await ingest_failure(path, headers.get("content-type"), refused.status, refused.message, refused.headers)(
                scope, receive, send
            )
            return
        except _Disconnected:
            self.budget.give_back(reserved)
            self.counters.add(requests=1, client_disconnects=1)
            _logger.info("client %s disconnected before sending its whole body to %s", _peer(scope), path)
            return
        scope.setdefault("state", {})[STATE_KEY] = key
        try:
            await self.app(scope, _replay(body, receive), send)
        finally:
            self.budget.give_back(reserved)

    def _reserve(self, declared: str | None, limit: int) -> int:
        if declared is not None:
            if not declared.strip().isdigit():
                raise _Refused(400, f"Content-Length {declared!r} is not a number of bytes", "requests_malformed")
            size = int(declared)
            if size > limit:
                raise _Refused(413, f"the request body exceeds {limit} bytes", "requests_too_large")
        else:
            size = limit  # chunked: reserve what it may grow to
        if not self.budget.take(size):
            raise _Refused(
                429,
                "the receiver is busy with other uploads; retry after the time in Retry-After",
                "requests_throttled",
                {"Retry-After": str(self.limits.retry_after_s)},
            )
        return size

    async def _read_body(self, receive: Receive, limit: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        deadline = time.monotonic() + self.limits.body_timeout_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(remaining, 0.001))
            except asyncio.TimeoutError:
                raise _Refused(
                    408,
                    f"the request body did not arrive within {self.limits.body_timeout_s:g} s",
                    "requests_timed_out",
                ) from None
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _Refused(413, f"the request body exceeds {limit} bytes", "requests_too_large")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields the buffered body, then listens to the real client."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _peer(scope: Scope) -> str:
    client: Any = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "?"
