"""Talking to Stripe's Events API: the ``stripe`` library, retries, and the list envelope.

Everything here is about Stripe, nothing about the store (that is :mod:`.stripe_events`):

* :class:`EventsApi` lists ``GET /v1/events`` through the official library's
  ``StripeClient.raw_request`` — its authentication, parameter encoding (``types[0]=…``,
  ``created[gte]``), JSON decoding and typed errors, without turning each event into a
  ``StripeObject`` (about 1 ms per event); ``stripe_account`` becomes the ``Stripe-Account``
  header;
* 429, 5xx and network errors are retried up to ``max_attempts`` with exponential backoff and
  jitter, never sooner than ``Retry-After`` and never after ``Stripe-Should-Retry: false`` (the
  library itself retries neither a 429 nor by ``Retry-After``, so its own retries are off);
  401/403 raise :class:`StripeRefused` at once. Messages name what happened, never the key;
* a :class:`Page` keeps the body as Stripe sent it: the store splits it into each event's exact
  JSON (what Stripe said is what is stored and sent to the app's repair endpoint);
* :func:`read_ahead` lets a thread fetch pages while the caller stores earlier ones.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from queue import Full, Queue
from typing import Any, TypeVar

import stripe

from fulfillwatch.incident_engine.stripe_config import StripeConfig

_logger = logging.getLogger("fulfillwatch.stripe")
#: Stripe's largest page.
PAGE_SIZE = 100
_MAX_BACKOFF_S = 60.0
Sleep = Callable[[float], None]
_T = TypeVar("_T")


class StripeUnavailable(Exception):
    """Stripe could not be read now (rate limits, errors, network): try again later."""


class StripeRefused(Exception):
    """Stripe refused the key (401) or its permissions (403): nothing works until it is fixed."""


@dataclass(frozen=True)
class Page:
    """One page of ``GET /v1/events``: its events as the library decoded them, whether older ones
    follow, and the body as Stripe sent it (the store takes each event's exact JSON from it)."""

    events: list[dict[str, Any]]
    has_more: bool
    body: str

    @property
    def more(self) -> bool:
        """Whether to read on (Stripe says so, and this page moved the cursor)."""
        return self.has_more and bool(self.events)


def build_client(config: StripeConfig) -> stripe.StripeClient:
    """A ``StripeClient`` for ``config`` (its own retries off: :class:`Reconciler` retries)."""
    options: dict[str, Any] = {"max_network_retries": 0}
    if config.api_base is not None:
        options["base_addresses"] = {"api": str(config.api_base).rstrip("/")}
    return stripe.StripeClient(config.key(), **options)


class EventsApi:
    """``GET /v1/events`` for one configuration, with retries (see the module docstring)."""

    def __init__(
        self, config: StripeConfig, *, client: stripe.StripeClient | None = None, sleep: Sleep = time.sleep
    ) -> None:
        self.config = config
        self.stripe = client or build_client(config)
        #: How retries wait (tests record instead of waiting).
        self.sleep = sleep
        #: Requests sent, retries included.
        self.requests = 0

    def list(
        self,
        account: str,
        gte: int,
        after: str | None,
        *,
        limit: int = PAGE_SIZE,
        delivery_success: bool | None = None,
    ) -> Page:
        """One page of the tracked types created at or after ``gte`` (Unix seconds), older than
        the event ``after``, of ``account`` ("" for the key's own)."""
        params: dict[str, Any] = {"limit": limit, "types": self.config.event_types, "created": {"gte": gte}}
        if after:
            params["starting_after"] = after
        if delivery_success is not None:
            params["delivery_success"] = delivery_success
        if account:
            params["stripe_account"] = account  # a request option: the Stripe-Account header
        # raw_request: the library's authentication, encoding and errors, without turning every
        # event into a StripeObject (that cost ~1 ms per event; only the JSON is kept).
        response = self._call(lambda: self.stripe.raw_request("get", "/v1/events", **params))
        envelope = response.data
        if not isinstance(envelope, dict) or not isinstance(envelope.get("data"), list):
            raise StripeUnavailable("Stripe answered something that is not a list of events")
        return Page(list(envelope["data"]), bool(envelope.get("has_more")), str(response.body))

    def _call(self, request: Callable[[], Any]) -> Any:
        """One request, retried on 429/5xx/network errors with backoff (see the module docstring)."""
        for attempt in range(1, self.config.max_attempts + 1):
            self.requests += 1
            try:
                return request()
            except (stripe.AuthenticationError, stripe.PermissionError) as exc:
                raise StripeRefused(self._describe(exc)) from None
            except (stripe.RateLimitError, stripe.APIConnectionError, stripe.APIError) as exc:
                headers = {k.lower(): v for k, v in (getattr(exc, "headers", None) or {}).items()}
                status = getattr(exc, "http_status", None)
                retryable = headers.get("stripe-should-retry") != "false" and (
                    isinstance(exc, (stripe.RateLimitError, stripe.APIConnectionError)) or (status or 500) >= 500
                )
                if not retryable or attempt == self.config.max_attempts:
                    raise StripeUnavailable(self._describe(exc)) from None
                self.sleep(_backoff(attempt, headers.get("retry-after")))
            except stripe.StripeError as exc:
                raise StripeUnavailable(self._describe(exc)) from None
        raise AssertionError("unreachable")

    def _describe(self, exc: stripe.StripeError) -> str:
        """What went wrong, for ``/healthz`` (Stripe's own text goes to the log only)."""
        status = getattr(exc, "http_status", None)
        what = {401: "refused the API key (401)", 403: "the API key lacks read access to Events (403)"}.get(
            status or 0, f"answered {status}" if status else "could not be reached"
        )
        text = (getattr(exc, "user_message", None) or str(exc) or type(exc).__name__).splitlines()[0]
        _logger.debug("stripe: %s", text.replace(self.config.key(), "***")[:300])
        return f"Stripe {what}"

    # --- the loop -------------------------------------------------------------------------------


_DONE = object()


def read_ahead(pages: Iterator[_T], depth: int = 8) -> Iterator[_T]:
    """``pages``, produced by a thread up to ``depth`` ahead of the consumer; an error of the
    producer is raised in the consumer, and a consumer that stops (an error while storing)
    stops the producer at its next page."""
    queue: Queue[object] = Queue(maxsize=depth)
    stopped = threading.Event()

    def hand_over(item: object) -> bool:
        while not stopped.is_set():
            with contextlib.suppress(Full):
                queue.put(item, timeout=0.5)
                return True
        return False

    def produce() -> None:
        try:
            for page in pages:
                if not hand_over(page):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            hand_over(_Failed(exc))
            return
        hand_over(_DONE)

    threading.Thread(target=produce, name="stripe-read-ahead", daemon=True).start()
    try:
        while True:
            item = queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stopped.set()


@dataclass(frozen=True)
class _Failed:
    error: BaseException


def _backoff(attempt: int, retry_after: str | None) -> float:
    """Exponential with full jitter, never shorter than what ``Retry-After`` asks, at most a minute."""
    delay = random.uniform(0.5, 1.0) * min(_MAX_BACKOFF_S, 0.5 * 2 ** (attempt - 1))  # noqa: S311 - jitter
    asked: float
    try:
        asked = float(retry_after) if retry_after is not None else 0.0
    except ValueError:
        asked = 0.0
    return float(min(_MAX_BACKOFF_S, max(delay, asked)))
