"""Running ``fulfillwatch serve`` as a real subprocess, and talking to it."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from support.otlp import PROTOBUF, post

ROOT = Path(__file__).resolve().parents[2]
_T = TypeVar("_T")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], _T], *, timeout: float, interval: float = 0.05, what: str = "condition") -> _T:
    """Poll ``check`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: _T | None = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")
        time.sleep(interval)


#: The services of the tests' default project (ingest keys are required: a span of a service
#: outside the key's project would be rejected).
TEST_SERVICES = (
    "shop",
    "json-app",
    "shop-with-own-tracing",
    "stripe-shop",
    "plain-celery",
    "flaky-shop",
    "down-shop",
    "nowhere-shop",
    "slow-shop",
    "strict-shop",
    "bench-shop",
)


#: The named API tokens of every test server, with their scopes.
TEST_TOKENS = {
    "alice": ("operate",),
    "bob": ("operate",),
    "reader": ("read",),
    "dashboard": ("admin", "act_as"),
}


def toml_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(f'"{value}"' for value in values) + "]"


def sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass
class ServeProcess:
    """A ``fulfillwatch serve`` subprocess on free ports with its own data directory.

    Its configuration has the project ``default`` owning :data:`TEST_SERVICES` and an ingest key
    for it (:attr:`ingest_key`), plus whatever ``config`` adds (TOML)."""

    data_dir: Path
    log_path: Path
    engine_interval: float = 0.5
    default_timeout: float = 1800
    extra_env: Mapping[str, str] = field(default_factory=dict)
    extra_args: tuple[str, ...] = ()
    config: str = ""
    #: False: no --config at all (a serve of an older version, which knows no projects or keys).
    with_config: bool = True
    services: tuple[str, ...] = TEST_SERVICES
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    ingest_key: str = field(default_factory=lambda: "fwk_" + secrets.token_urlsafe(24))
    #: Named API tokens (name → scopes) besides FULFILLWATCH_API_TOKEN ("api", every scope).
    token_scopes: Mapping[str, Sequence[str]] = field(default_factory=lambda: dict(TEST_TOKENS))
    _tokens: dict[str, str] = field(default_factory=dict)
    otlp_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.log_path.with_name(self.log_path.stem + ".toml")

    def token_for(self, name: str) -> str:
        """The API token named ``name`` (see :attr:`token_scopes`)."""
        return self._tokens.setdefault(name, "fwt_" + secrets.token_urlsafe(24))

    def write_config(self) -> Path:
        base = (
            f"[projects.default]\nservices = {toml_list(self.services)}\n\n"
            f'[ingest_keys.tests]\nsha256 = "{sha256(self.ingest_key)}"\nprojects = ["default"]\n\n'
        )
        for name, scopes in self.token_scopes.items():
            base += f'[api_tokens.{name}]\nsha256 = "{sha256(self.token_for(name))}"\nscopes = {toml_list(scopes)}\n\n'
        # The test's own text first: top-level keys in it must come before any table.
        self.config_path.write_text(self.config + "\n" + base)
        return self.config_path

    def otlp_headers(self) -> dict[str, str]:
        """What an OTLP sender of the default project sends."""
        return {"Authorization": f"Bearer {self.ingest_key}"}

    def exporter_env(self) -> dict[str, str]:
        """The variables that point an app's OTLP exporter here, with the ingest key."""
        return {
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.otlp_url,
            "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer%20{self.ingest_key}",
        }

    def post_spans(self, body: bytes, content_type: str = PROTOBUF, **headers: str) -> httpx.Response:
        """POST an OTLP body with the default project's ingest key."""
        return post(self.otlp_url, body, content_type, **{"authorization": f"Bearer {self.ingest_key}", **headers})

    @property
    def otlp_url(self) -> str:
        return f"http://127.0.0.1:{self.otlp_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def env(self) -> dict[str, str]:
        return {**os.environ, "FULFILLWATCH_API_TOKEN": self.token, "PYTHONUNBUFFERED": "1", **self.extra_env}

    def start(self, *, wait: bool = True) -> ServeProcess:
        command = [
            sys.executable,
            "-m",
            "fulfillwatch.incident_engine",
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--otlp-port",
            str(self.otlp_port),
            "--api-port",
            str(self.api_port),
            "--engine-interval",
            str(self.engine_interval),
            "--default-timeout",
            str(self.default_timeout),
            *(("--config", str(self.write_config())) if self.with_config else ()),
            *self.extra_args,
        ]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env(), cwd=ROOT)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited with {self.process.returncode}:\n{self.log()}")
            try:
                return httpx.get(f"{self.api_url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout=timeout, interval=0.1, what="serve to become healthy")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then wait; returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: no cleanup at all."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    # --- API ----------------------------------------------------------------------------------

    def client(self, token: str | None = None, **headers: str) -> httpx.Client:
        """An API client with FULFILLWATCH_API_TOKEN, or with the named token ``token``."""
        secret = self.token if token is None else self.token_for(token)
        return httpx.Client(base_url=self.api_url, headers={"Authorization": f"Bearer {secret}", **headers}, timeout=30)

    def get(self, path: str, **params: Any) -> Any:
        with self.client() as client:
            response = client.get(path, params={k: v for k, v in params.items() if v is not None})
            response.raise_for_status()
            return response.json()

    def incidents(self, **filters: Any) -> list[dict[str, Any]]:
        """Every incident matching ``filters`` (all pages)."""
        items: list[dict[str, Any]] = []
        offset: int | None = 0
        while offset is not None:
            page = self.get("/api/incidents", limit=500, offset=offset, **filters)
            items.extend(page["items"])
            offset = page["next_offset"]
        return items

    def incident_for(self, event_id: str) -> dict[str, Any] | None:
        found = self.incidents(stripe_event_id=event_id)
        return found[0] if found else None


def run_app(
    scenario: str,
    *,
    otlp_url: str,
    prefix: str,
    ingest_key: str,
    count: int = 1,
    timeout: float | None = None,
    spans_file: Path | None = None,
    service: str = "shop",
) -> list[str]:
    """Run ``tests/apps/shop_app.py`` to completion; return the event ids it used."""
    command = [
        sys.executable,
        str(ROOT / "tests" / "apps" / "shop_app.py"),
        scenario,
        "--prefix",
        prefix,
        "--count",
        str(count),
    ]
    if timeout is not None:
        command += ["--timeout", str(timeout)]
    if spans_file is not None:
        command += ["--spans-file", str(spans_file)]
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_url,
        "OTEL_SERVICE_NAME": service,
        # What an app exporting through its own provider sets; init()'s exporter reads it too.
        "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer%20{ingest_key}",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, f"app failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return list(json.loads(done.stdout.strip().splitlines()[-1])["event_ids"])
