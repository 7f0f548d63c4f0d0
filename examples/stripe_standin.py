"""A stand-in for Stripe's Events API on localhost, for the demo and the tests.

Stripe's API cannot be reached from a demo machine or CI, so this plays ``GET /v1/events`` the
way Stripe's API reference describes it: the list envelope ``{"object": "list", "url":
"/v1/events", "has_more": ..., "data": [...]}``, newest first, ``limit`` (1-100),
``starting_after``, ``created[gte]``, ``types[]``, ``delivery_success``, the ``Stripe-Account``
header (each account has its own events), Bearer authentication, and scripted failures (429
with ``Retry-After``, 500, 401). Fulfillwatch talks to it through the real ``stripe`` library,
pointed here by ``[stripe] api_base``. Events are added in-process (:meth:`StandInStripe.add`)
or — for the demo's traffic and the benchmark — with ``POST /_standin/events`` (``{"event":
{...}, "account": "", "undelivered": false}``, or ``{"events": [such items]}``; the answer
reports the time spent answering list requests so far), which only this stand-in has.

``python -m examples.stripe_standin --port 12111`` (the key it accepts: ``$STRIPE_STANDIN_KEY``).
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from examples.stripe_shop.traffic import event as fixture_event

#: A restricted test-mode key the stand-in accepts (Stripe's key format).
STRIPE_TEST_KEY = "rk_test_51FulfillwatchStandInKey0123456789"


@dataclass
class StandInStripe:
    """The stand-in's state: events per account, failures to inject, requests seen."""

    key: str = STRIPE_TEST_KEY
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # account ("" = own) → events
    undelivered: set[str] = field(default_factory=set)  # ids listed by delivery_success=false
    failures: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)
    #: Failures answered to the n-th request from now on (1-based), instead of the next one.
    failures_at: dict[int, tuple[int, dict[str, str]]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    #: Seconds the stand-in spent building answers (reported beside the benchmark's total).
    busy_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Filtered, newest-first lists with each id's position, per (account, types, gte, undelivered):
    #: a walk of 1,000 pages must not sort 100,000 events per page. Cleared by :meth:`add`.
    _views: dict[tuple[Any, ...], tuple[list[dict[str, Any]], dict[str, int]]] = field(default_factory=dict)
    #: Each event's JSON, encoded once when added (Stripe's servers are not on this machine: the
    #: stand-in should cost the benchmark as little CPU as it can).
    _encoded: dict[str, str] = field(default_factory=dict)

    def add(self, stripe_event: dict[str, Any], account: str = "", *, undelivered: bool = False) -> None:
        """Make ``stripe_event`` listable (for ``account``: a Connect account's event)."""
        with self.lock:
            if account:
                stripe_event = {**stripe_event, "account": account}
            self.events.setdefault(account, []).append(stripe_event)
            self._encoded[stripe_event["id"]] = json.dumps(stripe_event)
            if undelivered:
                self.undelivered.add(stripe_event["id"])
            self._views.clear()

    def fail_next(self, status: int, **headers: str) -> None:
        """Answer the next request with ``status`` (then the following one, and so on)."""
        self.failures.append((status, headers))

    def fail_request(self, number: int, status: int, **headers: str) -> None:
        """Answer the ``number``-th request counted from now with ``status``."""
        self.failures_at[len(self.requests) + number] = (status, headers)

    def listing_json(self, account: str, query: dict[str, list[str]]) -> str:
        """The list envelope for one request, encoded (from each event's JSON encoded once)."""
        envelope = self.listing(account, query)
        data = ",".join(self._encoded[event["id"]] for event in envelope["data"])
        more = json.dumps(envelope["has_more"])
        return f'{{"object": "list", "url": "/v1/events", "has_more": {more}, "data": [{data}]}}'

    def listing(self, account: str, query: dict[str, list[str]]) -> dict[str, Any]:
        """The list envelope for one request."""
        # The stripe library sends a list as types[0], types[1], ...; others send types[].
        types = tuple(sorted(v for k, values in query.items() if k.startswith("types[") for v in values))
        gte = int(query["created[gte]"][0]) if "created[gte]" in query else None
        undelivered_only = query.get("delivery_success") == ["false"]
        with self.lock:
            key = (account, types, gte, undelivered_only)
            if key not in self._views:
                events = sorted(self.events.get(account, []), key=lambda e: (e["created"], e["id"]), reverse=True)
                events = [
                    e
                    for e in events
                    if (not types or e["type"] in types)
                    and (gte is None or e["created"] >= gte)
                    and (not undelivered_only or e["id"] in self.undelivered)
                ]
                self._views[key] = (events, {e["id"]: i for i, e in enumerate(events)})
            events, positions = self._views[key]
        start = 0
        if "starting_after" in query:
            after = positions.get(query["starting_after"][0])
            start = len(events) if after is None else after + 1
        limit = int(query.get("limit", ["10"])[0])
        page = events[start : start + limit]
        return {"object": "list", "url": "/v1/events", "has_more": start + limit < len(events), "data": page}


def stripe_event(name: str, event_id: str, created: int, **changes: Any) -> dict[str, Any]:
    """A fixture event (``examples/events/<name>.json``) with a new id and creation time."""
    made = fixture_event(name, event_id, customer=changes.pop("customer", None))
    made["created"] = created
    made.update(changes)
    return made


def _handler(state: StandInStripe) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as Stripe's API (the library reuses connections)

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: dict[str, Any] | str, headers: dict[str, str] | None = None) -> None:
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Request-Id", f"req_{len(state.requests)}")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            started = time.perf_counter()
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            account = self.headers.get("Stripe-Account", "")
            state.requests.append({"path": url.path, "query": query, "account": account})
            offered = self.headers.get("Authorization", "").removeprefix("Bearer ")
            if offered != state.key:
                # Stripe's own answer names the key redacted but for its last four characters.
                shown = offered[:8] + "*" * max(0, len(offered) - 12) + offered[-4:]
                message = f"Invalid API Key provided: {shown}"
                self._answer(401, {"error": {"type": "invalid_request_error", "message": message}})
                return
            scripted = state.failures_at.pop(len(state.requests), None)
            if scripted is None and state.failures:
                scripted = state.failures.popleft()
            if scripted is not None:
                status, headers = scripted
                kind = "rate_limit_error" if status == 429 else "api_error"
                self._answer(status, {"error": {"type": kind, "message": f"stand-in answers {status}"}}, headers)
                return
            if url.path != "/v1/events":
                self._answer(404, {"error": {"type": "invalid_request_error", "message": "unknown path"}})
                return
            self._answer(200, state.listing_json(account, query))
            state.busy_s += time.perf_counter() - started

        def do_POST(self) -> None:
            if urlsplit(self.path).path != "/_standin/events":
                self._answer(404, {"error": {"type": "invalid_request_error", "message": "unknown path"}})
                return
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                added = body.get("events", [body])  # one, or {"events": [...]}
                for item in added:
                    state.add(item["event"], str(item.get("account") or ""), undelivered=bool(item.get("undelivered")))
            except (ValueError, KeyError, TypeError) as exc:
                self._answer(400, {"error": {"type": "invalid_request_error", "message": str(exc)}})
                return
            self._answer(200, {"added": len(added), "busy_s": state.busy_s, "requests": len(state.requests)})

    return Handler


class StandInStripeServer:
    """The stand-in listening on 127.0.0.1 (a thread), as a context manager."""

    def __init__(self, state: StandInStripe | None = None, port: int = 0) -> None:
        self.state = state or StandInStripe()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self.state))
        self._thread = threading.Thread(target=self._server.serve_forever, name="stand-in-stripe", daemon=True)

    @property
    def url(self) -> str:
        """The base address to give ``[stripe] api_base``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> StandInStripeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def main() -> None:
    """Command line: serve until interrupted."""
    parser = argparse.ArgumentParser(description="A local stand-in for Stripe's Events API")
    parser.add_argument("--port", type=int, default=12111)
    args = parser.parse_args()
    state = StandInStripe(key=os.environ.get("STRIPE_STANDIN_KEY", STRIPE_TEST_KEY))
    server = ThreadingHTTPServer(("127.0.0.1", args.port), _handler(state))
    print(f"stand-in for Stripe's Events API on http://127.0.0.1:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
