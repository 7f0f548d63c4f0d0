"""The shop's Celery app and fulfillment tasks.

Worker: ``celery -A examples.stripe_shop.tasks worker --pool=solo`` (or prefork). The tasks are
declared as fulfillment tasks through the ``fulfillment=`` task option; ``init()`` (below)
enables Fulfillwatch's Celery integration, so receipts and results need no code in the tasks —
except :func:`skip_fulfillment` on the idempotency path.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task

import fulfillwatch.instrumentation as fw
from fulfillwatch.instrumentation.celery import skip_fulfillment

from . import db, effects
from .config import CONFIG

app = Celery("stripe_shop", broker=CONFIG.broker_url)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
# One call: receipts when the broker accepts a task, results when it ends (OTEL_* variables).
fw.init(service_name="stripe-shop", tracked_event_types=list(effects.EFFECTS))
db.ensure_schema(CONFIG.db_path, CONFIG.inbox_path)

_RETRY = {"autoretry_for": (effects.TransientError,), "max_retries": 3, "default_retry_delay": 0.2}


def _run(task: Task, effect: str, event: dict[str, Any]) -> None:
    effects.apply(effect, event, attempt=task.request.retries + 1, already_done=skip_fulfillment)


@app.task(bind=True, fulfillment={"event": "event", "effect": "unlock_access"}, **_RETRY)
def unlock_access(self: Task, event: dict[str, Any]) -> None:
    """checkout.session.completed: give the customer access."""
    _run(self, "unlock_access", event)


@app.task(bind=True, fulfillment={"event": "event", "effect": "grant_credits"}, **_RETRY)
def grant_credits(self: Task, event: dict[str, Any]) -> None:
    """invoice.paid: add the paid amount as credits."""
    _run(self, "grant_credits", event)


@app.task(bind=True, fulfillment={"event": "event", "effect": "update_plan"}, **_RETRY)
def update_plan(self: Task, event: dict[str, Any]) -> None:
    """customer.subscription.updated: set the plan and seats."""
    _run(self, "update_plan", event)


TASKS = {"unlock_access": unlock_access, "grant_credits": grant_credits, "update_plan": update_plan}


def enqueue(event: dict[str, Any]) -> None:
    """Queue the event's effect; raises if the broker does not accept it."""
    TASKS[effects.EFFECTS[event["type"]]].apply_async(args=(event,), expires=CONFIG.task_expires_s)
