"""A full disk under a real ``fulfillwatch serve``: it says so (``/readyz`` 503), asks senders to
retry (503 + ``Retry-After``: nothing is acknowledged that was not stored), and recovers by
itself when space is freed.

The data directory is a small tmpfs mounted for the test (CI runs as root; mounting is what a
full disk needs to be real rather than simulated).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.abuse import receipts_batch
from support.serve import ServeProcess, wait_for

MIB = 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=192m", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"this test mounts a tmpfs and needs root: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(directory: Path) -> Path:
    """Write zeros until the file system is full."""
    filler = directory / "filler"
    chunk = b"\0" * MIB
    with filler.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(chunk)
        except OSError:
            pass
    return filler


def _ready(server: ServeProcess) -> int:
    return httpx.get(f"{server.api_url}/readyz", timeout=10).status_code


def test_a_full_disk_is_not_ready_refuses_with_retry_after_and_recovers(small_disk: Path, tmp_path: Path) -> None:
    server = ServeProcess(data_dir=small_disk / "data", log_path=tmp_path / "serve.log").start()
    try:
        assert server.post_spans(receipts_batch("evt_disk_before_", 10, "shop")).status_code == 200
        filler = _fill(small_disk)

        def refused() -> httpx.Response | None:
            response = server.post_spans(receipts_batch(f"evt_disk_full_{os.urandom(4).hex()}_", 200, "shop"))
            return response if response.status_code == 503 else None

        response = wait_for(refused, timeout=60, interval=0.5, what="ingest refused on a full disk")
        assert response.headers["retry-after"].isdigit()
        wait_for(lambda: _ready(server) == 503, timeout=60, interval=0.5, what="/readyz to say not ready")
        failing = httpx.get(f"{server.api_url}/readyz").json()["failing"]
        assert "store_writable" in failing

        filler.unlink()
        wait_for(lambda: _ready(server) == 200, timeout=60, interval=0.5, what="/readyz to recover")
        assert server.post_spans(receipts_batch("evt_disk_after_", 10, "shop")).status_code == 200
        for event_id in ("evt_disk_before_0", "evt_disk_after_9"):
            assert [s["signal"] for s in server.get(f"/api/events/{event_id}")["signals"]] == ["receipt"]
    finally:
        server.kill()
