"""A Celery app that knows nothing about Fulfillwatch but declares its fulfillment task.

The test runs it under ``opentelemetry-instrument`` (worker and publisher): the
``fulfillwatch_celery`` entry point must be picked up with no code change here.
"""

from __future__ import annotations

import os

from celery import Celery

app = Celery("plain", broker=os.environ["PLAIN_BROKER_URL"])
app.conf.update(
    task_serializer="json", accept_content=["json"], task_ignore_result=True, broker_connection_retry_on_startup=True
)


@app.task(
    name="plain.grant_credits",
    fulfillment={"event": "event_id", "event_type": "invoice.paid", "effect": "grant_credits"},
)
def grant_credits(event_id: str, fail: bool = False) -> str:
    if fail:
        raise RuntimeError("credits service unavailable")
    return f"granted {event_id}"


if __name__ == "__main__":  # the publisher: python plain_celery_app.py EVENT_ID [fail]
    import sys

    from opentelemetry import trace

    # The app's own request span, as its web framework's instrumentation would open it.
    with trace.get_tracer("plain").start_as_current_span("POST /stripe/webhook"):
        grant_credits.delay(sys.argv[1], fail=len(sys.argv) > 2)
