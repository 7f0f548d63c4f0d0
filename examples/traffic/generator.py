"""Demo traffic: a Stripe webhook app whose fulfillment sometimes goes wrong.

It replays the fixture events of ``examples/events/`` (each with a fresh event id) through a
tiny in-process "webhook → queue → worker" app instrumented with Fulfillwatch's one call,
exporting real OTLP to a Fulfillwatch receiver. Most events are fulfilled; the rest hit the
failure modes Fulfillwatch exists for:

* ``failure``    — the job raises (tenant missing, database locked) → ``result_failed``;
* ``missing``    — the job is lost (worker down) → ``result_missing`` at the deadline;
* ``duplicate``  — a redelivery is marked "already done" while the first run never finished
  → ``duplicate_suppressed``;
* ``late``       — the job runs after its deadline → ``result_missing``, then ``resolved``.

Run: ``python examples/traffic/generator.py --endpoint http://127.0.0.1:4318 --timeout 20``.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"
#: The fixture files whose type a shop fulfils.
FULFILLED_TYPES = ("checkout.session.completed", "invoice.paid", "checkout.session.async_payment_succeeded")
SCENARIO_WEIGHTS = {"success": 70, "failure": 10, "missing": 8, "duplicate": 6, "late": 6}


class TenantNotFound(LookupError):
    """The account row does not exist yet when the job runs."""


def load_templates(directory: Path = EVENTS_DIR) -> list[dict[str, Any]]:
    """The fixture events of the fulfilled types."""
    templates = []
    for path in sorted(directory.glob("*.json")):
        if path.name == "MANIFEST.json":
            continue
        event = json.loads(path.read_text())
        if event.get("type") in FULFILLED_TYPES:
            templates.append(event)
    return templates


def fresh_event(template: dict[str, Any], prefix: str, number: int) -> dict[str, Any]:
    """A copy of a fixture event with a new, unique id and a current ``created`` time."""
    event = copy.deepcopy(template)
    event["id"] = f"evt_{prefix}{number:06d}"
    event["created"] = int(time.time())
    return event


def event_stream(prefix: str | None = None, seed: int | None = None) -> Iterator[dict[str, Any]]:
    """An endless stream of fresh events cycling over the templates."""
    rng = random.Random(seed)
    templates = load_templates()
    prefix = prefix or uuid.uuid4().hex[:10]
    number = 0
    while True:
        number += 1
        yield fresh_event(rng.choice(templates), prefix, number)


def _fail(event: dict[str, Any], rng: random.Random) -> None:
    if rng.random() < 0.5:
        customer = event["data"]["object"].get("customer")
        raise TenantNotFound(f"no tenant row for customer {customer}")
    raise sqlite3.OperationalError("database is locked")


def run(
    endpoint: str | None, rate: float, duration: float, timeout: float, seed: int | None, ingest_key: str | None = None
) -> int:
    """Send traffic until ``duration`` seconds passed (0: forever); return events sent."""
    import fulfillwatch.instrumentation as fw

    if endpoint:
        os.environ.setdefault("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    os.environ.setdefault("OTEL_BSP_SCHEDULE_DELAY", "500")
    fw.init(
        service_name="stripe-shop-demo",
        default_timeout=timeout,
        tracked_event_types="*",
        ingest_key=ingest_key or os.environ.get("FULFILLWATCH_INGEST_KEY") or None,
    )
    rng = random.Random(seed)
    scenarios, weights = zip(*SCENARIO_WEIGHTS.items(), strict=True)
    timers: list[threading.Timer] = []
    started = time.monotonic()
    sent = 0
    for event in event_stream(seed=seed):
        if duration and time.monotonic() - started >= duration:
            break
        scenario = rng.choices(scenarios, weights)[0]
        receipt = fw.record_receipt(event)  # the webhook durably queued the job
        job = {"event_id": event["id"], "receipt": receipt.carrier()}

        def work(job: dict[str, Any] = job, event: dict[str, Any] = event, scenario: str = scenario) -> None:
            try:
                with fw.fulfillment(job["event_id"], receipt=job["receipt"], attempt=1) as result:
                    if scenario == "failure":
                        _fail(event, rng)
                    elif scenario == "duplicate":
                        result.skip()  # the idempotency table says "done"; it was not
            except (TenantNotFound, sqlite3.OperationalError) as exc:
                logging.getLogger("demo").info("job for %s failed: %s", job["event_id"], exc)

        if scenario == "late":
            timer = threading.Timer(timeout + 8, work)
            timer.daemon = True
            timer.start()
            timers.append(timer)
        elif scenario != "missing":
            work()
        sent += 1
        time.sleep(rng.expovariate(rate) if rate > 0 else 0)
    for timer in timers:
        timer.join(timeout=timeout + 10)
    fw.force_flush()
    return sent


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--endpoint", help="OTLP/HTTP base URL (default: OTEL_EXPORTER_OTLP_ENDPOINT)")
    parser.add_argument("--rate", type=float, default=2.0, help="events per second (default 2)")
    parser.add_argument("--duration", type=float, default=0, help="seconds to run (default: until Ctrl-C)")
    parser.add_argument("--timeout", type=float, default=20, help="fulfillment deadline in seconds (default 20)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--ingest-key", help="Fulfillwatch ingest key (default: FULFILLWATCH_INGEST_KEY)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        sent = run(args.endpoint, args.rate, args.duration, args.timeout, args.seed, args.ingest_key)
    except KeyboardInterrupt:
        return
    print(f"sent {sent} events")


if __name__ == "__main__":
    main()
