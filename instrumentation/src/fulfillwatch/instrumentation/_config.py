"""Options of :func:`fulfillwatch.instrumentation.init`: validation, environment defaults."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from . import vocabulary as v

#: ``tracked_event_types=ALL_EVENT_TYPES`` tracks every Stripe event type.
ALL_EVENT_TYPES = "*"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_timeout(value: object, what: str = "timeout") -> float:
    """Seconds from a number, a ``timedelta`` or a string such as ``"90s"``, ``"30m"``, ``"2h"``."""
    if isinstance(value, bool):
        raise TypeError(f"{what} must be seconds or a timedelta, not a bool")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"{what} {value!r} is not a duration such as 1800, '90s', '30m' or '2h'")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise TypeError(f"{what} must be seconds or a timedelta, not {type(value).__name__}")
    if not seconds > 0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return seconds


@dataclass(frozen=True)
class Options:
    """Validated configuration of the instrumentation."""

    tracked_event_types: frozenset[str] = v.DEFAULT_TRACKED_EVENT_TYPES
    default_timeout_s: float = float(v.DEFAULT_TIMEOUT_S)
    timeouts_s: Mapping[str, float] = field(default_factory=dict)
    tracer_provider: Any = None
    service_name: str | None = None
    #: Sent by the exporter of the provider ``init()`` creates (never logged).
    ingest_key: str | None = field(default=None, repr=False)

    def is_tracked(self, event_type: str) -> bool:
        """Whether receipts of this event type are recorded automatically."""
        return ALL_EVENT_TYPES in self.tracked_event_types or event_type in self.tracked_event_types

    def timeout_for(self, event_type: str) -> float:
        """The deadline, in seconds after receipt, for an event of this type."""
        return self.timeouts_s.get(event_type, self.default_timeout_s)


_KNOWN = ("tracked_event_types", "default_timeout", "timeouts", "tracer_provider", "service_name", "ingest_key")


def _event_types(value: object) -> frozenset[str]:
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, Iterable):
        raise TypeError("tracked_event_types must be an iterable of event type strings or '*'")
    types = frozenset(str(item).strip() for item in value if str(item).strip())
    if not types:
        raise ValueError("tracked_event_types is empty; use '*' to track every event type")
    return types


def _timeouts(value: object) -> dict[str, float]:
    if isinstance(value, str):  # FULFILLWATCH_TIMEOUTS="invoice.paid=1h,checkout.session.completed=30m"
        pairs: dict[str, object] = {}
        for item in filter(None, (part.strip() for part in value.split(","))):
            name, sep, duration = item.partition("=")
            if not sep or not name.strip():
                raise ValueError(f"timeouts entry {item!r} is not 'event.type=duration'")
            pairs[name.strip()] = duration
        value = pairs
    if not isinstance(value, Mapping):
        raise TypeError("timeouts must map event types to seconds or timedeltas")
    return {str(key): parse_timeout(duration, f"timeout of {key}") for key, duration in value.items()}


def _from_environment(environ: Mapping[str, str]) -> dict[str, object]:
    found: dict[str, object] = {}
    if environ.get(v.ENV_TRACKED_EVENT_TYPES):
        found["tracked_event_types"] = environ[v.ENV_TRACKED_EVENT_TYPES]
    if environ.get(v.ENV_DEFAULT_TIMEOUT):
        found["default_timeout"] = environ[v.ENV_DEFAULT_TIMEOUT]
    if environ.get(v.ENV_TIMEOUTS):
        found["timeouts"] = environ[v.ENV_TIMEOUTS]
    if environ.get(v.ENV_INGEST_KEY):
        found["ingest_key"] = environ[v.ENV_INGEST_KEY]
    return found


def build_options(options: Mapping[str, object], environ: Mapping[str, str] | None = None) -> Options:
    """Validate keyword options; unset ones come from ``FULFILLWATCH_*`` variables, then defaults.

    Raises ``TypeError`` for an unknown option (so a typo never silently does nothing) and
    ``TypeError``/``ValueError`` naming the option for a bad value.
    """
    unknown = sorted(set(options) - set(_KNOWN))
    if unknown:
        raise TypeError(f"init() got unknown option(s) {', '.join(unknown)}; known: {', '.join(_KNOWN)}")
    merged = {**_from_environment(os.environ if environ is None else environ), **options}
    result = Options()
    if merged.get("tracked_event_types") is not None:
        result = replace(result, tracked_event_types=_event_types(merged["tracked_event_types"]))
    if merged.get("default_timeout") is not None:
        result = replace(result, default_timeout_s=parse_timeout(merged["default_timeout"], "default_timeout"))
    if merged.get("timeouts") is not None:
        result = replace(result, timeouts_s=_timeouts(merged["timeouts"]))
    service_name = merged.get("service_name")
    if service_name is not None and not isinstance(service_name, str):
        raise TypeError("service_name must be a string")
    ingest_key = merged.get("ingest_key")
    if ingest_key is not None and (not isinstance(ingest_key, str) or not ingest_key.strip()):
        raise TypeError("ingest_key must be a non-empty string")
    return replace(
        result, tracer_provider=merged.get("tracer_provider"), service_name=service_name, ingest_key=ingest_key
    )
