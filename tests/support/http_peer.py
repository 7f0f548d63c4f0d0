"""In-process stand-ins for the HTTP peers Fulfillwatch calls, and for the time it waits.

:class:`ScriptedPeer` is an ``httpx.MockTransport`` handler: a repair endpoint, Slack,
PagerDuty or a webhook receiver (all outside this project) answering scripted statuses and
recording what they received. :class:`Waits` replaces the delay between delivery attempts, so
retry schedules of minutes run in milliseconds and the test sees which delays were asked for.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class Call:
    """One request the peer received."""

    url: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ScriptedPeer:
    """Answers ``statuses`` in order, then ``default``; ``fail_with`` raises a network error
    instead while it is set."""

    statuses: list[int] = field(default_factory=list)
    default: int = 200
    fail_with: type[httpx.TransportError] | None = None
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.calls.append(Call(str(request.url), dict(request.headers), request.read()))
            if self.fail_with is not None:
                raise self.fail_with("scripted network failure", request=request)
            status = self.statuses.pop(0) if self.statuses else self.default
        return httpx.Response(status, json={"status": status})

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def received(self, where: Callable[[Call], bool] = lambda call: True) -> list[Call]:
        with self._lock:
            return [call for call in self.calls if where(call)]


def route(peers: dict[str, ScriptedPeer]) -> httpx.MockTransport:
    """One transport for several peers, chosen by host name."""
    return httpx.MockTransport(lambda request: peers[request.url.host](request))


class Waits:
    """A ``sleep`` for delivery retries: records each delay, and returns at once — or, after
    ``hold_after`` waits, never (a delivery parked mid-schedule, as a crash would leave it)."""

    def __init__(self, hold_after: int | None = None) -> None:
        self.delays: list[float] = []
        self._hold_after = hold_after

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if self._hold_after is not None and len(self.delays) > self._hold_after:
            await asyncio.Event().wait()
