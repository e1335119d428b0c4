"""A gateway with adversarial accounts (see support/security.py) in front of a real registry,
and its token key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from support import Upstream, free_port
from support.credentials import read_key, write_key
from support.gateway import RunningGateway, running_gateway
from support.security import security_config


@pytest.fixture(scope="module")
def token_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ec.EllipticCurvePrivateKey]:
    path = tmp_path_factory.mktemp("key") / "token.pem"
    return path, read_key(write_key(path))


@pytest.fixture(scope="module")
def shared_gateway(registry_upstream_session: Upstream, tmp_path_factory: pytest.TempPathFactory,
                   token_key: tuple[Path, ec.EllipticCurvePrivateKey]) -> Iterator[RunningGateway]:
    """One security gateway per module on the session's registry: use names unique to the module."""
    port = free_port()
    config = security_config(registry_upstream_session.url, port, token_key[0])
    with running_gateway(config, tmp_path_factory.mktemp("gateway"), port) as gateway:
        yield gateway


@pytest.fixture
def own_gateway(registry_upstream: Upstream, tmp_path: Path,
                token_key: tuple[Path, ec.EllipticCurvePrivateKey]) -> Iterator[RunningGateway]:
    """A security gateway of this test's own, on a registry of its own (free to reload)."""
    port = free_port()
    config = security_config(registry_upstream.url, port, token_key[0])
    with running_gateway(config, tmp_path / "gateway", port) as gateway:
        yield gateway
