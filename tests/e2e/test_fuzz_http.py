"""Schemathesis against a real ``fulfillwatch serve``: the API and the ingest app, from their own
OpenAPI documents, with valid credentials (so that requests get past authentication and into the
routes). Whatever it sends, no answer is a server error. Only localhost is ever a target.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from support.otlp import encode, record_scenario, recorded_spans
from support.serve import ServeProcess

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    directory = tmp_path_factory.mktemp("fuzz")
    server = ServeProcess(data_dir=directory / "data", log_path=directory / "serve.log").start()
    with recorded_spans(service="shop") as spans:  # something for the reads to find
        record_scenario("evt_fuzz_failed", "failed", LookupError("no tenant"), event_type="invoice.paid")
        record_scenario("evt_fuzz_healthy", "healthy", event_type="invoice.paid")
        assert server.post_spans(encode(spans.get_finished_spans())).status_code == 200
    yield server
    assert server.stop() == 0, server.log()


def _fuzz(schema_url: str, headers: dict[str, str]) -> int:
    """Every operation of the OpenAPI document at ``schema_url``, with generated requests; fails
    on the first server error; returns how many requests were sent. (Schemathesis drives the
    generation; its pytest plugin is not used: it relies on pytest internals pytest 9 removed.)"""
    schema = schemathesis.openapi.from_url(schema_url)
    sent = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @FUZZ
        @given(
            case=st.one_of(  # valid requests, and requests that break the schema on purpose
                operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
            )
        )
        def call(case: schemathesis.Case) -> None:
            nonlocal sent
            response = case.call(headers=headers, timeout=30)
            sent += 1
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:500]}"
            )

        call()
    return sent


def test_neither_app_answers_any_request_with_a_server_error(fuzzed: ServeProcess) -> None:
    api = _fuzz(f"{fuzzed.api_url}/openapi.json", {"Authorization": f"Bearer {fuzzed.token}"})
    ingest = _fuzz(f"{fuzzed.otlp_url}/openapi.json", {"Authorization": f"Bearer {fuzzed.ingest_key}"})
    print(f"schemathesis: {api} API requests, {ingest} ingest requests, no server error")
    assert api + ingest >= 1000, (api, ingest)
    log = fuzzed.log()
    assert "internal error" not in log and "Traceback" not in log
