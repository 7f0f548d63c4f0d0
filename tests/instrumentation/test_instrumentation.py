"""The instrumentation library in-process, with the real SDK and an in-memory exporter."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import stripe
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import StatusCode

import fulfillwatch.instrumentation as fw
from fulfillwatch.instrumentation import _runtime
from fulfillwatch.instrumentation import vocabulary as v
from fulfillwatch.instrumentation.instrumentor import FulfillwatchInstrumentor
from support.otlp import recorded_spans

EVENTS = Path(__file__).resolve().parents[2] / "examples" / "events"


def _event(name: str = "invoice.paid") -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text())


class TenantNotFound(LookupError):
    pass


@pytest.fixture
def spans():  # type: ignore[no-untyped-def]
    with recorded_spans() as exporter:
        yield exporter


def test_receipt_from_a_webhook_dict_carries_the_event_and_its_deadline(spans) -> None:  # type: ignore[no-untyped-def]
    before = datetime.now(timezone.utc)
    handle = fw.record_receipt(_event(), timeout=timedelta(minutes=10))
    [span] = spans.get_finished_spans()
    assert span.name == v.RECEIPT_SPAN and span.end_time is not None  # ended at once
    attributes = dict(span.attributes or {})
    assert attributes[v.STRIPE_EVENT_ID] == "evt_1Pgc76B7WZ01zgkWInvPaid1"
    assert attributes[v.STRIPE_EVENT_TYPE] == "invoice.paid"
    assert attributes[v.STRIPE_LIVEMODE] is False
    assert attributes[v.STRIPE_CUSTOMER] == "cus_QXg1o8vcGmoR32"
    assert attributes[v.STRIPE_AMOUNT] == 2000
    assert attributes[v.FULFILLMENT_TIMEOUT_S] == 600
    assert v.FULFILLMENT_EFFECT not in attributes  # the event's own fulfillment
    assert handle.due_at is not None and before + timedelta(minutes=10) <= handle.due_at
    assert datetime.fromisoformat(str(attributes[v.FULFILLMENT_DUE_AT]).replace("Z", "+00:00")) <= handle.due_at


def test_due_at_text_is_each_receipts_own_deadline_to_the_second(spans) -> None:  # type: ignore[no-untyped-def]
    # The text is cached per second (hot path): receipts with other deadlines must not share it.
    handles = [fw.record_receipt(_event(), timeout=timedelta(minutes=m)) for m in (10, 20, 10)]
    texts = [dict(s.attributes or {})[v.FULFILLMENT_DUE_AT] for s in spans.get_finished_spans()]
    for handle, text in zip(handles, texts, strict=True):
        assert handle.due_at is not None
        assert text == handle.due_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert texts[0] != texts[1]


def test_read_only_mappings_work_like_dicts(spans) -> None:  # type: ignore[no-untyped-def]
    # Plain dicts take a fast path; any other Mapping (a frozen copy, a framework's type) still works.
    from types import MappingProxyType

    event = _event()
    obj = MappingProxyType(event["data"]["object"])
    frozen = MappingProxyType({**event, "data": MappingProxyType({"object": obj})})
    carrier = fw.record_receipt(frozen).carrier()
    with fw.fulfillment(event["id"], receipt=MappingProxyType(carrier)):
        pass
    receipt, result = spans.get_finished_spans()
    assert dict(receipt.attributes or {})[v.STRIPE_CUSTOMER] == "cus_QXg1o8vcGmoR32"
    assert [link.context.span_id for link in result.links] == [receipt.context.span_id]
    assert dict(result.attributes or {})[v.STRIPE_EVENT_TYPE] == "invoice.paid"


def test_receipt_accepts_a_stripe_event_object_and_an_id_with_type(spans) -> None:  # type: ignore[no-untyped-def]
    event = stripe.Event.construct_from(_event("checkout.session.completed"), "sk_test_x")
    fw.record_receipt(event, effect="unlock_access")
    fw.record_receipt("evt_plain", event_type="invoice.paid")
    first, second = spans.get_finished_spans()
    assert first.attributes[v.STRIPE_EVENT_TYPE] == "checkout.session.completed"
    assert first.attributes[v.FULFILLMENT_EFFECT] == "unlock_access"
    assert first.attributes[v.STRIPE_AMOUNT] == 2000
    assert second.attributes[v.STRIPE_EVENT_ID] == "evt_plain"
    assert second.attributes[v.FULFILLMENT_TIMEOUT_S] == v.DEFAULT_TIMEOUT_S


def test_success_failure_and_skip_through_fulfillment(spans) -> None:  # type: ignore[no-untyped-def]
    receipt = fw.record_receipt("evt_1", event_type="invoice.paid", effect="grant_credits")
    carrier = receipt.carrier()
    assert json.loads(json.dumps(carrier)) == carrier and "traceparent" in carrier

    with fw.fulfillment("evt_1", receipt=carrier, attempt=1):
        pass
    error = TenantNotFound("no tenant row")
    with pytest.raises(TenantNotFound) as raised, fw.fulfillment("evt_1", receipt=carrier, attempt=2):
        raise error
    assert raised.value is error  # re-raised unchanged
    with fw.fulfillment("evt_1", receipt=receipt) as scope:
        scope.skip()

    _, success, failure, skipped = spans.get_finished_spans()
    assert success.attributes[v.FULFILLMENT_OUTCOME] == "success"
    assert success.attributes[v.FULFILLMENT_EFFECT] == "grant_credits"  # from the carrier
    assert success.attributes[v.STRIPE_EVENT_TYPE] == "invoice.paid"
    assert [link.context.span_id for link in success.links] == [receipt.span_context.span_id]
    assert failure.attributes[v.FULFILLMENT_OUTCOME] == "failure"
    assert failure.attributes[v.ERROR_TYPE] == f"{__name__}.TenantNotFound"
    assert failure.attributes[v.FULFILLMENT_ERROR_MESSAGE] == "no tenant row"
    assert failure.attributes[v.FULFILLMENT_ATTEMPT] == 2
    assert failure.status.status_code is StatusCode.ERROR
    assert [event.name for event in failure.events] == ["exception"]
    assert skipped.attributes[v.FULFILLMENT_OUTCOME] == "skipped"


def test_business_spans_inside_the_block_are_children_of_the_result(spans) -> None:  # type: ignore[no-untyped-def]
    app_tracer = _runtime._state.provider.get_tracer("app")  # type: ignore[union-attr]
    with fw.fulfillment("evt_1"), app_tracer.start_as_current_span("db.write"):
        pass
    inner, result = spans.get_finished_spans()
    assert inner.parent is not None and inner.parent.span_id == result.context.span_id


def test_decorator_takes_the_event_from_the_arguments_sync_and_async(spans) -> None:  # type: ignore[no-untyped-def]
    @fw.fulfillment(lambda job: job["event_id"], effect="grant_credits", receipt=lambda job: job["receipt"])
    def grant(job: dict[str, Any]) -> str:
        return "granted"

    @fw.fulfillment(lambda event_id: event_id)
    async def unlock(event_id: str) -> None:
        raise TenantNotFound(event_id)

    receipt = fw.record_receipt("evt_9", event_type="invoice.paid", effect="grant_credits")
    assert grant({"event_id": "evt_9", "receipt": receipt.carrier()}) == "granted"
    with pytest.raises(TenantNotFound):
        asyncio.run(unlock("evt_10"))
    _, granted, unlocked = spans.get_finished_spans()
    assert granted.attributes[v.STRIPE_EVENT_ID] == "evt_9" and granted.attributes[v.FULFILLMENT_OUTCOME] == "success"
    assert (
        unlocked.attributes[v.STRIPE_EVENT_ID] == "evt_10" and unlocked.attributes[v.FULFILLMENT_OUTCOME] == "failure"
    )


def test_record_result_explicit_outcomes(spans, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    fw.record_result("evt_1", "failure", error="card declined", effect="grant_credits")
    fw.record_result("evt_1", "skipped")
    with caplog.at_level(logging.ERROR, "fulfillwatch.instrumentation"):
        fw.record_result("evt_1", "maybe")
    failure, skipped = spans.get_finished_spans()
    assert failure.attributes[v.FULFILLMENT_ERROR_MESSAGE] == "card declined"
    assert skipped.attributes[v.FULFILLMENT_OUTCOME] == "skipped"
    assert "not one of success, failure, skipped" in caplog.text


def test_watch_event_records_only_tracked_types(spans) -> None:  # type: ignore[no-untyped-def]
    fw.init(tracer_provider=_runtime._state.provider)  # type: ignore[union-attr]  # back to the defaults
    assert fw.watch_event(_event("customer.subscription.created")) is None
    handle = fw.watch_event(_event("invoice.paid"))
    assert handle is not None and handle.event_type == "invoice.paid"
    assert len(spans.get_finished_spans()) == 1


def test_per_type_timeouts_from_options_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(v.ENV_TIMEOUTS, "invoice.paid=2h, checkout.session.completed=90s")
    monkeypatch.setenv(v.ENV_DEFAULT_TIMEOUT, "45m")
    options = fw.init(tracer_provider=TracerProvider())
    try:
        assert options.timeout_for("invoice.paid") == 7200
        assert options.timeout_for("checkout.session.completed") == 90
        assert options.timeout_for("anything.else") == 2700
        assert (
            fw.init(tracer_provider=TracerProvider(), timeouts={"invoice.paid": 60}).timeout_for("invoice.paid") == 60
        )
    finally:
        _runtime.reset()


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"tracked_events": ["invoice.paid"]}, TypeError, "unknown option(s) tracked_events"),
        ({"default_timeout": -5}, ValueError, "must be positive"),
        ({"default_timeout": "soon"}, ValueError, "is not a duration"),
        ({"timeouts": {"invoice.paid": True}}, TypeError, "not a bool"),
        ({"tracked_event_types": []}, ValueError, "use '*'"),
    ],
)
def test_init_rejects_bad_options(options: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        fw.init(**options)


def test_init_is_idempotent_and_creates_one_private_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")  # nothing listens
    try:
        fw.init(service_name="idempotent")
        first = _runtime._state
        fw.init(service_name="idempotent")
        second = _runtime._state
        assert first is not None and second is not None
        assert first.owns_provider and second.provider is first.provider
    finally:
        _runtime.reset()


class _BrokenTracer:
    def start_span(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("exporter misconfigured")


class _BrokenProvider:
    def get_tracer(self, *args: Any, **kwargs: Any) -> _BrokenTracer:
        return _BrokenTracer()


def test_nothing_raises_into_the_app_after_init(caplog: pytest.LogCaptureFixture) -> None:
    fw.init(tracer_provider=_BrokenProvider())
    try:
        with caplog.at_level(logging.ERROR, "fulfillwatch.instrumentation"):
            handle = fw.record_receipt("evt_1", event_type="invoice.paid")
            assert handle.event_id == "" and handle.carrier() == {}
            assert fw.record_receipt(42) is not None  # type: ignore[arg-type]
            ran = []
            with fw.fulfillment("evt_1") as scope:
                ran.append(True)
                scope.skip()
            with fw.fulfillment(None):  # a bad event id: the business code still runs
                ran.append(True)
            fw.record_result("evt_1", "success")
            assert fw.watch_event({"no": "id"}) is None
        assert ran == [True, True]
        assert "exporter misconfigured" in caplog.text
    finally:
        _runtime.reset()


def test_the_instrumentor_binds_the_api_to_a_provider() -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = FulfillwatchInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        fw.record_receipt("evt_instrumented", event_type="invoice.paid")
        assert [span.name for span in exporter.get_finished_spans()] == [v.RECEIPT_SPAN]
    finally:
        instrumentor.uninstrument()
    assert _runtime._state is None
