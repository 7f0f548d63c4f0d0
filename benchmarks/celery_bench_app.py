"""The Celery app of ``bench_celery.py``: the same no-op task, plain and declared for fulfillment."""

from __future__ import annotations

import os

from celery import Celery

import fulfillwatch.instrumentation as fw

app = Celery("bench", broker=os.environ["BENCH_BROKER_URL"], backend=os.environ["BENCH_BACKEND_URL"])
app.conf.update(task_serializer="json", accept_content=["json"], broker_connection_retry_on_startup=True)
fw.init(service_name="celery-bench", tracked_event_types="*")


@app.task(name="bench.plain")
def plain(event_id: str) -> str:
    return event_id


@app.task(name="bench.fulfilled", fulfillment={"event": "event_id", "event_type": "invoice.paid"})
def fulfilled(event_id: str) -> str:
    return event_id
