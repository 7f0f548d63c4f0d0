"""Shared fixtures: a real ``fulfillwatch serve`` subprocess per test module."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from support.serve import ServeProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """A running ``fulfillwatch serve`` (embedded chDB, 0.5 s engine interval) for one module."""
    directory = tmp_path_factory.mktemp("serve")
    process = ServeProcess(data_dir=directory / "data", log_path=directory / "serve.log").start()
    yield process
    code = process.stop()
    assert code == 0, f"serve did not stop cleanly ({code}):\n{process.log()}"


@pytest.fixture
def prefix() -> str:
    """A unique event-id prefix, so tests sharing a server never see each other's events."""
    return uuid.uuid4().hex[:10]
