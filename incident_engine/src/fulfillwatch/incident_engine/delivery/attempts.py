"""Delivering one signed HTTP POST with retries: what reprocess callbacks and alerts share.

Retries follow a schedule of delays (``[0, 5, 30, 120, 600]`` means: at once, then 5 s, 30 s,
2 min and 10 min after the previous attempt). Network errors, 5xx, 408 and 429 are retried,
honouring ``Retry-After`` (seconds or an HTTP date) when it asks for longer; any other status
ends the delivery (2xx: delivered; other 4xx: rejected). Redirects are never followed: the
target is what the configuration says, nothing else. Every attempt is reported to
``on_attempt`` so that callers can log it.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

import httpx

#: Statuses worth another attempt (besides network errors).
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
EXCERPT_BYTES = 1024

Outcome = Literal["delivered", "retrying", "rejected", "gave_up"]
#: Outcomes after which a delivery makes no more attempts.
FINAL_OUTCOMES = frozenset({"delivered", "rejected", "gave_up"})
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Attempt:
    """One HTTP attempt and what it means for the delivery."""

    number: int
    at: datetime
    status: int | None  # None: no HTTP response (network error, timeout)
    error: str  # the network error, or "" when there was a response
    latency_ms: float
    response_excerpt: str
    outcome: Outcome
    next_delay_s: float | None = None  # when outcome == "retrying"

    def describe(self) -> str:
        """``HTTP 503`` or the network error, for reasons and logs."""
        return f"HTTP {self.status}" if self.status is not None else self.error

    def details(self) -> dict[str, object]:
        """JSON-friendly form for the incident log."""
        return {
            "attempt": self.number,
            "status": self.status,
            "error": self.error,
            "latency_ms": self.latency_ms,
            "response_excerpt": self.response_excerpt,
            "outcome": self.outcome,
            "next_delay_s": self.next_delay_s,
        }


def remaining_wait(last: datetime, next_delay_s: float | None, now: datetime) -> float:
    """Seconds still to wait before the attempt after ``last`` (0 when that time has passed)."""
    if next_delay_s is None:
        return 0.0
    return max(0.0, (last - now).total_seconds() + float(next_delay_s))


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delay-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


async def deliver(
    client: httpx.AsyncClient,
    url: str,
    body: Callable[[int], tuple[bytes, dict[str, str]]],
    *,
    schedule: Sequence[float],
    timeout_s: float,
    on_attempt: Callable[[Attempt], Awaitable[None]],
    first_attempt: int = 1,
    first_delay_s: float | None = None,
    max_retry_after_s: float = 3600.0,
    sleep: Sleep = asyncio.sleep,
) -> Attempt:
    """POST until delivered, rejected or out of attempts; return the last attempt.

    ``body(n)`` returns the bytes and headers of attempt ``n`` (signatures carry a fresh
    timestamp each time). ``first_attempt`` > 1 resumes a delivery interrupted by a restart,
    after ``first_delay_s`` (what is left of the wait the last attempt asked for; default: the
    schedule's delay, counted from now). ``sleep`` waits between attempts
    (tests pass one that records the delay instead of waiting it out).
    """
    last: Attempt | None = None
    delay: float | None = first_delay_s
    for number in range(first_attempt, len(schedule) + 1):
        delay = schedule[number - 1] if delay is None else delay
        if delay > 0:
            await sleep(delay)
        payload, headers = body(number)
        started = time.perf_counter()
        at = datetime.now(timezone.utc)
        status: int | None = None
        error, excerpt = "", ""
        retry_after: float | None = None
        try:
            response = await client.post(
                url, content=payload, headers=headers, timeout=timeout_s, follow_redirects=False
            )
            status = response.status_code
            excerpt = response.content[:EXCERPT_BYTES].decode("utf-8", errors="replace")
            retry_after = retry_after_seconds(response.headers.get("retry-after"))
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        latency_ms = round((time.perf_counter() - started) * 1000, 1)
        more = number < len(schedule)
        if status is not None and 200 <= status < 300:
            outcome: Outcome = "delivered"
        elif status is not None and status not in RETRYABLE_STATUSES:
            outcome = "rejected"
        else:
            outcome = "retrying" if more else "gave_up"
        delay = None
        if outcome == "retrying":
            delay = schedule[number]
            if retry_after is not None:  # the receiver asked for longer
                delay = max(delay, min(retry_after, max_retry_after_s))
        last = Attempt(number, at, status, error, latency_ms, excerpt, outcome, delay)
        await on_attempt(last)
        if outcome != "retrying":
            return last
    if last is None:  # resumed past the end of the schedule
        last = Attempt(first_attempt, datetime.now(timezone.utc), None, "no attempts left", 0.0, "", "gave_up")
        await on_attempt(last)
    return last
