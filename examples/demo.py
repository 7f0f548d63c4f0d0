"""``fulfillwatch demo``: the whole product on one machine, with a shop that sometimes fails.

It starts, each as its own process (logs in ``<data dir>/logs``):

* ``fulfillwatch serve`` (demo mode, 1 s evaluations) with a repair target for the shop;
* ``redis-server`` and the example shop (``examples/stripe_shop``): its webhook app and a Celery
  worker, instrumented with ``init()``, with 20 s fulfillment deadlines;
* the dashboard, in demo mode (no login);
* a local stand-in for Stripe's Events API (``examples/stripe_standin.py``), which ``serve``
  reconciles against every few seconds, as it would against Stripe;
* demo traffic: signed Stripe webhooks to the shop, some of which fail (a bug in the job, a
  tenant row created late, a slow job) and a few of which the shop never records (a wrong
  signature, a handler that drops the event) — ``not_received`` — see
  ``examples/stripe_shop/traffic.py``.

Open incidents appear within a minute; a failed one can be repaired from the dashboard with
Reprocess. Ctrl-C stops everything. ``fulfillwatch demo`` runs :func:`main` from a Fulfillwatch
checkout: this module and the example shop are not part of the installed packages.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from examples.processes import Child, answers

DEADLINE_S = 20
_TRACKED = ("checkout.session.completed", "invoice.paid", "customer.subscription.updated")


class DemoError(RuntimeError):
    """The demo cannot start; the message says what is missing."""


@dataclass(frozen=True)
class DemoPorts:
    """Where the demo's parts listen (all on 127.0.0.1)."""

    otlp: int = 4318
    api: int = 8000
    dashboard: int = 8501
    shop: int = 8100
    redis: int = 6390
    stripe: int = 12111


def _wait(what: str, ready: Callable[[], bool], child: Child, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise DemoError(f"{what} exited; its log ({child.log_path}) ends with:\n{child.log()[-2000:]}")
        if ready():
            return
        time.sleep(0.2)
    raise DemoError(f"{what} did not become ready in {timeout:.0f} s (log: {child.log_path})")


class Demo:
    """Starts and stops the demo's processes."""

    def __init__(self, root: Path, data_dir: Path, ports: DemoPorts, token: str, rate: float) -> None:
        if not (root / "examples" / "stripe_shop" / "webhook.py").exists():
            raise DemoError(f"{root} is not a Fulfillwatch checkout: run the demo from the repository's root")
        self.redis = shutil.which("redis-server")
        if self.redis is None:
            raise DemoError(
                "the demo runs the example shop on Celery and needs redis-server: "
                "sudo apt-get install redis-server (scripts/demo.sh installs it)"
            )
        self.root, self.data_dir, self.ports, self.token, self.rate = root, data_dir, ports, token, rate
        self.logs = data_dir / "logs"
        self.children: list[Child] = []

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.dashboard}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.api}"

    def _child(self, name: str, command: list[str], env: dict[str, str]) -> Child:
        child = Child(name, command, env, self.logs / f"{name}.log", self.root).start()
        self.children.append(child)
        return child

    def start(self) -> None:
        """Start every part, in order, each once the previous one is ready."""
        shutil.rmtree(self.data_dir, ignore_errors=True)  # a fresh demo every time
        self.logs.mkdir(parents=True)
        repair_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        # The shop writes with an ingest key, as in production: the demo needs none (--demo),
        # but shows how a project, its services and its key fit together.
        ingest_key = "fwk_" + secrets.token_urlsafe(32)
        config = self.data_dir / "fulfillwatch.toml"
        config.write_text(
            'ingest_auth = "required"\n\n'
            '[projects.shop]\nservices = ["stripe-shop"]\n\n'
            f'[ingest_keys.shop]\nsha256 = "{hashlib.sha256(ingest_key.encode()).hexdigest()}"\n'
            'projects = ["shop"]\n\n'
            f'[repair_targets.stripe-shop]\nurl = "http://127.0.0.1:{self.ports.shop}/fulfillwatch/repair"\n'
            f'secrets = ["{repair_secret}"]\n'
        )
        python = sys.executable
        base = {**os.environ, "FULFILLWATCH_API_TOKEN": self.token, "PYTHONPATH": str(self.root)}
        # Stripe's record of the events, read back by the reconciler: a local stand-in for Stripe's
        # Events API (Stripe itself is not reachable from a demo), with a restricted test key.
        stripe_key = "rk_test_" + secrets.token_hex(16)
        stripe_url = f"http://127.0.0.1:{self.ports.stripe}"
        with config.open("a") as more:
            more.write(
                f'\n[stripe]\nservice = "stripe-shop"\nmode = "test"\napi_base = "{stripe_url}"\n'
                f"event_types = {json.dumps(list(_TRACKED))}\n"
                f'grace_s = {DEADLINE_S}\npoll_interval_s = 3\ncheck_interval_s = 2\nbackfill = "1h"\n'
            )
        standin = self._child(
            "stripe-standin",
            [python, "-m", "examples.stripe_standin", "--port", str(self.ports.stripe)],
            {**base, "STRIPE_STANDIN_KEY": stripe_key},
        )
        _wait("the stand-in for Stripe", lambda: answers(f"{stripe_url}/v1/events"), standin)
        serve = self._child(
            "serve",
            [
                python,
                "-m",
                "fulfillwatch.incident_engine",
                "serve",
                "--demo",
                "--config",
                str(config),
                "--data-dir",
                str(self.data_dir / "store"),
                "--otlp-port",
                str(self.ports.otlp),
                "--api-port",
                str(self.ports.api),
                "--engine-interval",
                "1",
                "--default-timeout",
                str(DEADLINE_S),
                "--log-level",
                "warning",
            ],
            {**base, "STRIPE_API_KEY": stripe_key},
        )
        _wait("fulfillwatch serve", lambda: answers(f"{self.api_url}/healthz"), serve)
        redis = self._child(
            "redis",
            [
                str(self.redis),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.ports.redis),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.data_dir),
            ],
            base,
        )
        shop_env = {
            **base,
            "SHOP_BROKER_URL": f"redis://127.0.0.1:{self.ports.redis}/0",
            "SHOP_DATA_DIR": str(self.data_dir / "shop"),
            "SHOP_REPAIR_SECRETS": repair_secret,
            "FULFILLWATCH_INGEST_KEY": ingest_key,
            "FULFILLWATCH_TIMEOUTS": ",".join(f"{event_type}={DEADLINE_S}s" for event_type in _TRACKED),
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{self.ports.otlp}",
            "OTEL_BSP_SCHEDULE_DELAY": "500",
        }
        shop = self._child(
            "shop-web",
            [
                python,
                "-m",
                "uvicorn",
                "examples.stripe_shop.webhook:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.ports.shop),
                "--log-level",
                "warning",
            ],
            shop_env,
        )
        _wait("the shop's web app", lambda: answers(f"http://127.0.0.1:{self.ports.shop}/docs"), shop)
        celery = str(Path(python).with_name("celery"))
        worker = self._child(
            "shop-worker",
            [
                celery,
                "-A",
                "examples.stripe_shop.tasks",
                "worker",
                "--pool=solo",
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            shop_env,
        )
        _wait("the shop's Celery worker", lambda: "ready." in worker.log(), worker)
        assert redis.alive()
        dashboard = self._child(
            "dashboard",
            [python, "-m", "fulfillwatch.dashboard", "--port", str(self.ports.dashboard)],
            {**base, "FULFILLWATCH_DASHBOARD_API_URL": self.api_url, "FULFILLWATCH_DASHBOARD_DEMO": "1"},
        )
        _wait("the dashboard", lambda: answers(f"{self.dashboard_url}/_stcore/health"), dashboard)
        self._child(
            "traffic",
            [
                python,
                "-m",
                "examples.stripe_shop.traffic",
                "--url",
                f"http://127.0.0.1:{self.ports.shop}/stripe/webhook",
                "--rate",
                str(self.rate),
                "--stripe-standin",
                stripe_url,
            ],
            shop_env,
        )

    def stop(self) -> None:
        """Stop everything, newest first."""
        for child in reversed(self.children):
            child.stop()

    def run_until_stopped(self, on_ready: Callable[[Demo], None]) -> None:
        """Start, announce, and wait for SIGINT/SIGTERM (or a part dying)."""
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        try:
            self.start()
            on_ready(self)
            while not stop.wait(1):
                dead = [child.name for child in self.children if not child.alive()]
                if dead:
                    raise DemoError(f"{', '.join(dead)} stopped unexpectedly (logs: {self.logs})")
        finally:
            self.stop()


def main(root: Path, data_dir: Path, ports: dict[str, int], rate: float) -> int:
    """Run the demo until Ctrl-C; the exit code (what ``fulfillwatch demo`` calls)."""
    token = os.environ.get("FULFILLWATCH_API_TOKEN") or secrets.token_urlsafe(24)

    def announce(running: Demo) -> None:
        print(
            "\nFulfillwatch demo is running. Incidents appear within a minute.\n"
            f"  Dashboard  {running.dashboard_url}  (demo mode: no login)\n"
            f"  API        {running.api_url}/docs   token {token}\n"
            f"  Logs       {running.logs}\n"
            "Open an incident whose reason is a PlanMappingError and click Reprocess: the shop repairs it.\n"
            "not_received incidents (Stripe has the event, the shop never recorded it) appear after 20 s;\n"
            "Reprocess sends the event to the shop, which runs the handler's work on it.\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )

    try:
        Demo(root, data_dir, DemoPorts(**ports), token, rate).run_until_stopped(announce)
    except DemoError as exc:
        print(f"fulfillwatch demo: {exc}", file=sys.stderr, flush=True)
        return 1
    print("demo stopped", flush=True)
    return 0
