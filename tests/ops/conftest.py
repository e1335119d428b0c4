"""Fixtures for the operations tests: a gateway with an audit file, Prometheus, one full scenario."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from support import Upstream, free_port, wait_until
from support.gateway import RunningGateway, running_gateway
from support.ops import GatewayFactory, ops_config
from support.prometheus import Prometheus, start_prometheus
from support.regclient import RegistryClient
from support.scenario import Scenario, run_scenario


@pytest.fixture
def ops_gateway(registry_upstream: Upstream, tmp_path: Path) -> GatewayFactory:
    """`with ops_gateway(**server_settings) as gw:` a gateway of this test's own (own registry)."""

    def start(**server: Any) -> AbstractContextManager[RunningGateway]:
        port = free_port()
        directory = tmp_path / f"gateway-{port}"
        config = ops_config(registry_upstream.url, port, directory, **server)
        return running_gateway(config, directory, port)

    return start


@pytest.fixture(scope="module")
def scenario_gateway(
    registry_upstream_session: Upstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    port = free_port()
    directory = tmp_path_factory.mktemp("ops-gateway")
    config = ops_config(registry_upstream_session.url, port, directory)
    with running_gateway(config, directory, port) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def prometheus(
    scenario_gateway: RunningGateway, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    server = start_prometheus(tmp_path_factory.mktemp("prometheus"), scenario_gateway.host)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def scenario(scenario_gateway: RunningGateway, prometheus: Prometheus) -> Scenario:
    """Pushes, pulls, a delete, denials and failed logins, after Prometheus's first scrape
    (so its counters start from a sample of zero and `increase()` sees the change)."""
    wait_until(lambda: prometheus.scalar('up{job="registry-gateway"}') == 1, timeout=30,
               what="the first scrape of the gateway")
    return run_scenario(RegistryClient(scenario_gateway.port), scenario_gateway)
