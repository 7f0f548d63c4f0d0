"""What misbehaving and hostile clients do, on raw sockets (a well-behaved HTTP library would
not do it), and what it costs a process (from /proc). Shared by the robustness tests and
``benchmarks/bench_robustness.py``."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from fulfillwatch.instrumentation import vocabulary as v


def rss_mib(pid: int, field_name: str = "VmRSS") -> float:
    """A process's resident memory (``VmHWM``: its peak), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field_name} for {pid}")


def request_head(path: str, length: int, headers: dict[str, str] | None = None) -> bytes:
    """The head of a POST declaring ``length`` body bytes."""
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {length}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def abandon_upload(port: int, path: str, headers: dict[str, str], *, reset: bool) -> None:
    """Start an upload (head and part of a 1 MB body), then go away: close, or reset (RST)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request_head(path, 1_000_000, headers) + b"\0" * 4096)
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def first_answer(port: int, path: str, length: int, headers: dict[str, str], body_prefix: int = 0) -> tuple[str, float]:
    """Declare a ``length``-byte body, send ``body_prefix`` of it, and read the status line
    the server answers with before the rest was sent; ``(status line, seconds)``."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request_head(path, length, headers))
        sent = 0
        chunk = b"\0" * 65536
        while sent < body_prefix:
            try:
                sock.sendall(chunk)
            except OSError:
                break  # the server answered and closed: what we are measuring
            sent += len(chunk)
        answer = sock.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace")
    return answer, time.perf_counter() - started


@dataclass
class Prober:
    """Calls ``url`` every ``interval_s`` from a thread; records each answer's status and time
    (status 0: no answer within ``timeout_s``)."""

    url: str
    interval_s: float = 0.05
    timeout_s: float = 5.0
    answers: list[tuple[int, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Prober:
        def run() -> None:
            with httpx.Client(timeout=self.timeout_s) as client:
                while not self._stop.is_set():
                    started = time.perf_counter()
                    try:
                        status = client.get(self.url).status_code
                    except httpx.HTTPError:
                        status = 0
                    self.answers.append((status, time.perf_counter() - started))
                    self._stop.wait(self.interval_s)

        self._thread = threading.Thread(target=run, name="prober", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[tuple[int, float]]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        return self.answers


def _attribute(key: str, value: str | int) -> KeyValue:
    any_value = AnyValue(int_value=value) if isinstance(value, int) else AnyValue(string_value=value)
    return KeyValue(key=key, value=any_value)


def receipts_batch(
    prefix: str,
    count: int,
    service: str,
    *,
    end_times_ns: Callable[[int], int] | None = None,
    extra: Callable[[int], dict[str, str | int]] | None = None,
) -> bytes:
    """An OTLP protobuf request of ``count`` receipt spans (events ``{prefix}{n}``), built from
    the proto classes directly (fast enough for batches of tens of MiB)."""
    now_ns = time.time_ns()
    spans = []
    for n in range(count):
        attributes = [
            _attribute(v.STRIPE_EVENT_ID, f"{prefix}{n}"),
            _attribute(v.STRIPE_EVENT_TYPE, "invoice.paid"),
            _attribute(v.FULFILLMENT_TIMEOUT_S, 3600),
        ]
        attributes += [_attribute(key, value) for key, value in (extra(n) if extra else {}).items()]
        end = end_times_ns(n) if end_times_ns else now_ns
        spans.append(
            Span(
                trace_id=n.to_bytes(8, "big") + hash(prefix).to_bytes(8, "big", signed=True),
                span_id=(n + 1).to_bytes(8, "big"),
                name=v.RECEIPT_SPAN,
                start_time_unix_nano=end - 1000,
                end_time_unix_nano=end,
                attributes=attributes,
            )
        )
    resource = ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])
    resource.resource.attributes.append(_attribute("service.name", service))
    return ExportTraceServiceRequest(resource_spans=[resource]).SerializeToString()


def receipts_batch_of_size(prefix: str, size: int, service: str) -> tuple[bytes, int]:
    """A receipts batch of between 97 % of ``size`` and ``size`` bytes, and how many spans it
    holds (spans grow with their number's digits: the count is corrected until it fits)."""
    count = size // (len(receipts_batch(prefix, 1000, service)) // 1000)
    while True:
        body = receipts_batch(prefix, count, service)
        if 0.97 * size <= len(body) <= size:
            return body, count
        count = int(count * size / len(body) * 0.99)
