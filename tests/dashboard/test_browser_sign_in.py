"""Signing in to the dashboard with OpenID Connect, in a real browser, against a real local
identity provider (``oidc-provider-mock``: a full OIDC provider run here, standing in for the
team's own, which is outside this project). What the signed-in person does is recorded as theirs.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

import fulfillwatch.instrumentation as fw
from examples.processes import Child, answers
from support.otlp import encode, recorded_spans
from support.serve import ROOT, ServeProcess, free_port, wait_for

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class TenantNotFound(LookupError):
    pass


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The identity provider's issuer URL."""
    port = free_port()
    child = Child(
        "oidc-provider",
        [sys.executable, "-m", "oidc_provider_mock", "--port", str(port), "--host", "127.0.0.1"],
        {**os.environ, "NO_COLOR": "1"},
        tmp_path_factory.mktemp("oidc") / "provider.log",
        ROOT,
    ).start()
    issuer = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answers(f"{issuer}/.well-known/openid-configuration"), timeout=60, what="the provider")
        yield issuer
    finally:
        child.stop()


@pytest.fixture(scope="module")
def signed_in_dashboard(server: ServeProcess, provider: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    url = f"http://localhost:{port}"  # another host name than the provider's: separate cookies
    child = Child(
        "dashboard",
        [sys.executable, "-m", "fulfillwatch.dashboard", "--port", str(port)],
        {
            **os.environ,
            "FULFILLWATCH_DASHBOARD_API_URL": server.api_url,
            "FULFILLWATCH_DASHBOARD_API_TOKEN": server.token_for("dashboard"),
            "FULFILLWATCH_DASHBOARD_OIDC_SERVER_METADATA_URL": f"{provider}/.well-known/openid-configuration",
            "FULFILLWATCH_DASHBOARD_OIDC_CLIENT_ID": "fulfillwatch-dashboard",
            "FULFILLWATCH_DASHBOARD_OIDC_CLIENT_SECRET": "dashboard-client-secret",
            "FULFILLWATCH_DASHBOARD_OIDC_REDIRECT_URI": f"{url}/oauth2callback",
            "FULFILLWATCH_DASHBOARD_COOKIE_SECRET": "a-cookie-secret-of-thirty-two-chars!!",
        },
        tmp_path_factory.mktemp("dashboard") / "dashboard.log",
        ROOT,
    ).start()
    try:
        wait_for(lambda: answers(f"{url}/_stcore/health"), timeout=60, what="the dashboard")
        yield url
    finally:
        child.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    if chromium is None:
        raise RuntimeError("chromium is not installed (scripts/bootstrap.sh --dev installs it)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _settled(page: Page, drawn: str) -> None:
    page.wait_for_selector(drawn, timeout=30_000)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=30_000)


def test_an_oidc_sign_in_records_the_person_as_the_actor(
    server: ServeProcess, signed_in_dashboard: str, browser: Browser, tmp_path: Path
) -> None:
    with recorded_spans(service="shop") as spans:
        receipt = fw.record_receipt("evt_oidc_actor", event_type="invoice.paid")
        fw.record_result("evt_oidc_actor", "failure", error=TenantNotFound("no tenant"), receipt=receipt)
        assert server.post_spans(encode(spans.get_finished_spans())).status_code == 200
    incident = wait_for(lambda: server.incident_for("evt_oidc_actor"), timeout=30, what="the incident")

    page = browser.new_page()
    page.goto(signed_in_dashboard)
    _settled(page, 'button:has-text("Sign in with your identity provider")')
    assert page.locator('[data-testid="stMetricValue"]').count() == 0  # nothing before signing in
    page.get_by_role("button", name="Sign in with your identity provider").click()
    page.wait_for_selector('input[name="sub"]', timeout=30_000)  # the provider's own page
    page.fill('input[name="sub"]', "dana@example.com")
    page.get_by_role("button", name="Authorize").click()
    _settled(page, '[data-testid="stMetricValue"]')  # back on the dashboard, signed in
    assert page.get_by_text("dana@example.com").count() >= 1

    page.goto(f"{signed_in_dashboard}/incident?id={incident['id']}")
    _settled(page, 'h3:has-text("result_failed")')
    page.get_by_role("button", name="Acknowledge", exact=True).click()
    page.get_by_role("button", name="Confirm acknowledge").click()
    page.get_by_text("Acknowledged.").wait_for(timeout=30_000)
    last = server.get(f"/api/incidents/{incident['id']}")["timeline"][-1]
    assert (last["type"], last["actor"], last["details"]["via"]) == ("acknowledged", "dana@example.com", "dashboard")
    page.close()
