"""The gateway in front of a real registry, for the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Upstream, free_port
from support.gateway import RunningGateway, base_config, running_gateway


@pytest.fixture(scope="module")
def shared_gateway(
    registry_upstream_session: Upstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    """One gateway per test module, on the session's registry: use unique repository names."""
    port = free_port()
    config = base_config(registry_upstream_session.url, port)
    with running_gateway(config, tmp_path_factory.mktemp("gateway"), port) as gateway:
        yield gateway


@pytest.fixture
def gateway(registry_upstream: Upstream, tmp_path: Path) -> Iterator[RunningGateway]:
    """A gateway of this test's own, on a registry of its own (free to reload or restart)."""
    port = free_port()
    with running_gateway(base_config(registry_upstream.url, port), tmp_path / "gateway", port) as running:
        yield running
