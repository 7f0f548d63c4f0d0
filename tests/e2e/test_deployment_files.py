"""``docker-compose.yml``, ``otel-collector.yaml`` and the Dockerfiles, checked without Docker.

The compose file is validated by Debian's ``docker-compose`` (``docker-compose config`` needs
no Docker engine), the collector configuration is cross-checked against it and against the
span vocabulary, and the environment the compose file gives the Fulfillwatch services is
loaded by the real settings loader. Bringing the stack up needs a Docker engine, which does
not run here: that test is marked ``docker`` and runs elsewhere with
``FULFILLWATCH_TEST_DOCKER=1 pytest -m docker tests/test_deployment_files.py``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from fulfillwatch.incident_engine.settings import load_settings
from fulfillwatch.instrumentation import vocabulary as v
from support.serve import ROOT

SECRETS = {
    "FULFILLWATCH_API_TOKEN": "compose-test-token-0123456789",
    "CLICKHOUSE_PASSWORD": "compose-test-password",
    "FULFILLWATCH_DASHBOARD_USERS_FILE": str(ROOT / "tests" / "fixtures" / "dashboard-users.toml"),
    "SHOP_REPAIR_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "OTEL_COLLECTOR_APP_TOKEN": "compose-test-app-token-0123456789",
    "FULFILLWATCH_INGEST_KEY": "fwk_compose_test_key",
    "FULFILLWATCH_INGEST_KEY_SHA256": hashlib.sha256(b"fwk_compose_test_key").hexdigest(),
}


def _compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    program = shutil.which("docker-compose")
    if program is None:
        raise RuntimeError("docker-compose is not installed (scripts/bootstrap.sh --dev installs Debian's)")
    clean = {key: value for key, value in os.environ.items() if key not in SECRETS}
    return subprocess.run(
        [program, "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        env={**clean, **env},
        cwd=ROOT,
        timeout=60,
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The compose file as docker-compose resolves it (validated against its schema)."""
    done = _compose_config(SECRETS)
    assert done.returncode == 0, done.stderr
    resolved: dict[str, Any] = yaml.safe_load(done.stdout)
    return resolved


@pytest.fixture(scope="module")
def collector_config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "otel-collector.yaml").read_text())
    return loaded


def test_compose_file_is_valid_and_has_every_part(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {
        "clickhouse",
        "jaeger",
        "otel-collector",
        "fulfillwatch-collector",
        "fulfillwatch-engine",
        "fulfillwatch-api",
        "dashboard",
        "redis",
        "shop-web",
        "shop-worker",
        "shop-traffic",
    }
    commands = {name: service.get("command") for name, service in compose["services"].items()}
    assert commands["fulfillwatch-collector"] == ["collector"]
    assert commands["fulfillwatch-engine"] == ["engine"]
    assert commands["fulfillwatch-api"] == ["api"]
    # Images are pinned (no implicit or explicit "latest").
    for name, service in compose["services"].items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: {image}"
    assert "healthcheck" in compose["services"]["clickhouse"]
    assert "clickhouse-data" in compose["volumes"]


def test_compose_refuses_to_start_without_the_secrets() -> None:
    for missing in SECRETS:
        done = _compose_config({key: value for key, value in SECRETS.items() if key != missing})
        assert done.returncode != 0
        assert f"set {missing}" in done.stderr, done.stderr


def test_fulfillwatch_services_get_a_valid_configuration(compose: dict[str, Any], tmp_path: Path) -> None:
    for name in ("fulfillwatch-collector", "fulfillwatch-engine", "fulfillwatch-api"):
        environment = compose["services"][name]["environment"]
        saved = dict(os.environ)
        try:
            os.environ.update(environment)
            settings = load_settings()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        assert (
            settings.clickhouse_dsn.startswith("http://fulfillwatch:")
            and "@clickhouse:8123/" in settings.clickhouse_dsn
        )
        access = settings.ingest_access()
        assert access.required and access.service_projects == {"stripe-shop": "shop"}
        [key] = access.keys.values()
        assert key.digest == SECRETS["FULFILLWATCH_INGEST_KEY_SHA256"] and key.projects == {"shop"}
        target = settings.repair_targets["stripe-shop"]
        assert urlsplit(str(target.url)).hostname == "shop-web"
        assert [secret.get_secret_value() for secret in target.secrets] == [SECRETS["SHOP_REPAIR_SECRET"]]
        assert settings.host == "0.0.0.0"


def _published(port: str | dict[str, Any]) -> tuple[str, int]:
    """(host address, container port) of a published port in short ("ip:host:container") or
    long syntax."""
    if isinstance(port, dict):
        return str(port.get("host_ip", "")), int(port["target"])
    parts = port.split(":")
    return (parts[0] if len(parts) == 3 else ""), int(parts[-1].split("/")[0])


def _ports(service: dict[str, Any]) -> set[int]:
    exposed = {int(port) for port in service.get("expose", [])}
    published = {_published(port)[1] for port in service.get("ports", [])}
    return exposed | published


def _mount(volume: str | dict[str, str]) -> tuple[str, str]:
    """(source, target) of a volume in short ("src:dst:ro") or long syntax."""
    if isinstance(volume, dict):
        return volume.get("source", ""), volume["target"]
    source, target = volume.split(":")[:2]
    return source, target


def test_collector_pipelines_use_only_defined_components(collector_config: dict[str, Any]) -> None:
    service = collector_config["service"]
    for extension in service["extensions"]:
        assert extension in collector_config["extensions"], extension
    for name, pipeline in service["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in collector_config[kind], f"pipeline {name}: {kind[:-1]} {component} is not defined"
        assert pipeline["processors"][0] == "memory_limiter", f"{name}: memory_limiter must come first"
    for name, exporter in collector_config["exporters"].items():
        storage = exporter.get("sending_queue", {}).get("storage")
        if storage:
            assert storage in service["extensions"], f"{name}: queue storage {storage} is not enabled"
    # Every span to the tracing backend, fulfillment spans (only) to Fulfillwatch.
    pipelines = service["pipelines"]
    everything = [p for p in pipelines.values() if "filter/fulfillment_only" not in p["processors"]]
    filtered = [p for p in pipelines.values() if "filter/fulfillment_only" in p["processors"]]
    assert [p["exporters"] for p in everything] == [["otlp_grpc/jaeger"]]
    assert [p["exporters"] for p in filtered] == [["otlp_http/fulfillwatch"]]
    fulfillwatch = collector_config["exporters"]["otlp_http/fulfillwatch"]
    assert fulfillwatch["retry_on_failure"]["enabled"] and fulfillwatch["sending_queue"]["enabled"]
    # Every hop is authenticated: apps → this collector, this collector → Fulfillwatch.
    assert fulfillwatch["headers"]["authorization"] == "Bearer ${env:FULFILLWATCH_INGEST_KEY}"
    for name, protocol in collector_config["receivers"]["otlp"]["protocols"].items():
        authenticator = protocol["auth"]["authenticator"]
        assert authenticator in service["extensions"] and authenticator.startswith("bearertokenauth"), name


def test_collector_endpoints_match_the_compose_services(
    collector_config: dict[str, Any], compose: dict[str, Any]
) -> None:
    services = compose["services"]
    for name, exporter in collector_config["exporters"].items():
        endpoint = exporter["endpoint"]
        parts = urlsplit(endpoint if "://" in endpoint else f"grpc://{endpoint}")
        assert parts.hostname in services, f"{name}: {parts.hostname} is not a compose service"
        assert parts.port in _ports(services[parts.hostname]), (
            f"{name}: {parts.hostname} does not listen on {parts.port}"
        )
    receiver_ports = {
        int(urlsplit(f"tcp://{protocol['endpoint']}").port or 0)
        for protocol in collector_config["receivers"]["otlp"]["protocols"].values()
    }
    assert receiver_ports <= _ports(services["otel-collector"])
    # The shop's spans go to the collector's OTLP/HTTP receiver.
    shop_endpoint = urlsplit(services["shop-web"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert shop_endpoint.hostname == "otel-collector" and shop_endpoint.port in receiver_ports
    assert services["shop-web"]["environment"]["OTEL_EXPORTER_OTLP_HEADERS"] == (
        f"Authorization=Bearer%20{SECRETS['OTEL_COLLECTOR_APP_TOKEN']}"
    )
    # Published ports listen on the host's loopback only.
    for name, service in services.items():
        for port in service.get("ports", []):
            assert _published(port)[0] == "127.0.0.1", f"{name} publishes {port} beyond loopback"
    # The collector runs this file, in the version its component names are written for.
    collector = services["otel-collector"]
    mounts = [_mount(volume) for volume in collector["volumes"]]
    config_target = next(target for source, target in mounts if source == str(ROOT / "otel-collector.yaml"))
    assert f"--config={config_target}" in collector["command"]
    version = collector["image"].rsplit(":", 1)[1]
    assert tuple(int(part) for part in version.split(".")) >= (0, 144, 0), "otlp_http/otlp_grpc need v0.144.0+"
    assert f"opentelemetry-collector-contrib:{version}" in (ROOT / "otel-collector.yaml").read_text()


def test_the_fulfillment_filter_uses_the_vocabulary(collector_config: dict[str, Any]) -> None:
    conditions = collector_config["processors"]["filter/fulfillment_only"]["traces"]["span"]
    text = " ".join(conditions)
    names = set(re.findall(r'name [!=]= "([^"]+)"', text))
    attributes = set(re.findall(r'attributes\["([^"]+)"\]', text))
    assert names == set(v.FULFILLMENT_SPANS)
    vocabulary = {value for key, value in vars(v).items() if key.isupper() and isinstance(value, str)}
    assert attributes <= vocabulary


def test_dockerfiles_are_pinned_and_run_as_a_user(compose: dict[str, Any]) -> None:
    dockerfiles = {service["build"]["dockerfile"] for service in compose["services"].values() if "build" in service}
    assert dockerfiles == {"docker/fulfillwatch.Dockerfile", "docker/dashboard.Dockerfile", "docker/shop.Dockerfile"}
    for dockerfile in dockerfiles:
        text = (ROOT / dockerfile).read_text()
        base = re.search(r"^FROM (\S+)", text, re.MULTILINE)
        assert base and re.search(r":\d+\.\d+\.\d+-slim", base.group(1)), f"{dockerfile}: base image not pinned"
        users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
        assert users and users[-1] not in ("root", "0"), f"{dockerfile} runs as root"
        for copied in re.findall(r"^COPY (\S+)", text, re.MULTILINE):
            assert (ROOT / copied).exists(), f"{dockerfile}: {copied} does not exist"


@pytest.mark.docker
def test_docker_compose_up_shows_incidents() -> None:
    if not os.environ.get("FULFILLWATCH_TEST_DOCKER"):
        pytest.skip("needs a Docker engine: set FULFILLWATCH_TEST_DOCKER=1 (none runs in CI here)")
    env = {**os.environ, **SECRETS}
    subprocess.run(["docker", "compose", "up", "--build", "-d", "--wait"], check=True, cwd=ROOT, env=env, timeout=1800)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            response = httpx.get(
                "http://localhost:8000/api/incidents",
                headers={"Authorization": f"Bearer {SECRETS['FULFILLWATCH_API_TOKEN']}"},
            )
            if response.status_code == 200 and response.json()["total"] > 0:
                return
            time.sleep(2)
        raise AssertionError("no incident within 5 minutes of docker compose up")
    finally:
        subprocess.run(["docker", "compose", "down", "-v"], cwd=ROOT, env=env, timeout=600)
