"""Real service processes for the integration tests: redis-server, Celery workers, uvicorn apps."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from examples.processes import Child

from .serve import ROOT, free_port, wait_for


def require(program: str) -> str:
    """The path of a program the tests need; fail with what to install if it is missing."""
    found = shutil.which(program)
    if found is None:
        raise RuntimeError(f"{program} is not installed (scripts/bootstrap.sh --dev installs it)")
    return found


@dataclass
class RedisServer:
    """A throwaway redis-server on a free port, no persistence."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [
                require("redis-server"),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        client = redis.Redis(port=self.port)
        wait_for(lambda: _ping(client), timeout=10, what="redis-server")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def _ping(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


#: Child processes of the tests are the product's own (see examples.processes).
ManagedProcess = Child


def celery_worker(
    app: str,
    env: Mapping[str, str],
    log_path: Path,
    *,
    pool: str = "solo",
    concurrency: int = 1,
    launcher: tuple[str, ...] = (),
) -> ManagedProcess:
    """A real ``celery worker`` process, started and ready (it logged 'ready')."""
    command = [
        *launcher,
        str(Path(sys.executable).with_name("celery")),
        "-A",
        app,
        "worker",
        f"--pool={pool}",
        f"--concurrency={concurrency}",
        "--loglevel=INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    worker = Child("celery worker", command, env, log_path, ROOT).start()
    wait_for(lambda: "ready." in worker.log() or not worker.alive(), timeout=60, what="the Celery worker")
    assert worker.alive(), f"the worker exited:\n{worker.log()}"
    return worker


def uvicorn_app(app: str, port: int, env: Mapping[str, str], log_path: Path, health: str) -> ManagedProcess:
    """A real uvicorn process serving ``app``; ready when ``health`` answers."""
    server = ManagedProcess(
        app,
        [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env,
        log_path,
        ROOT,
    ).start()

    def up() -> bool:
        assert server.alive(), f"{app} exited:\n{server.log()}"
        try:
            httpx.get(f"http://127.0.0.1:{port}{health}", timeout=1)
        except httpx.HTTPError:
            return False
        return True

    wait_for(up, timeout=60, what=app)
    return server
