"""Checking times given to the API: with a time zone, and within what the store can hold."""

from __future__ import annotations

from datetime import datetime, timezone

from fastapi import HTTPException

#: What ``DateTime64(6)`` columns hold (ClickHouse: 1900-01-01 to 2299-12-31).
EARLIEST = datetime(1900, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2299, 12, 31, tzinfo=timezone.utc)


def date_problem(**given: datetime | None) -> str | None:
    """What is wrong with the first unusable time (no time zone, or outside the storable
    range), naming the parameter; ``None`` when all are fine."""
    for name, value in given.items():
        if value is None:
            continue
        if value.tzinfo is None:
            return f"{name} must include a time zone, e.g. 2026-01-31T12:00:00Z"
        if not EARLIEST <= value <= LATEST:
            return f"{name} must be between 1900-01-01 and 2299-12-31"
    return None


def check_dates(**given: datetime | None) -> None:
    """422 naming the parameter for an unusable time (query parameters)."""
    problem = date_problem(**given)
    if problem is not None:
        raise HTTPException(422, problem)
