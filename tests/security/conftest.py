"""A gateway with adversarial accounts in front of a real registry, and its token key.

Accounts on top of tests/support/gateway.py's (alice in myteam, bob with no grants, ...):
- sam: the only member of secretteam, which may pull, push and delete `secret/**`;
- eve: named in `secret/**`'s delete list but nowhere else: a delete-only principal, which
  under the contract's rules (delete needs pull) has no access at all;
- pat: may push (hence pull) `drop/*` and nothing else: a pusher without access to `secret/**`;
- frank: a second member of myteam, so two identities may push the same repository.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from support import Upstream, free_port
from support.gateway import PASSWORDS, RunningGateway, base_config, password_hash, running_gateway

EXTRA_PASSWORDS = {"sam": "sam-secret", "eve": "eve-secret", "pat": "pat-secret",
                   "frank": "frank-secret"}
ALL_PASSWORDS = {**PASSWORDS, **EXTRA_PASSWORDS}


def write_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return key


def security_config(upstream_url: str, port: int, key_file: Path) -> dict[str, Any]:
    config = base_config(upstream_url, port)
    config["token"]["key_file"] = str(key_file)
    for name in EXTRA_PASSWORDS:
        config["users"][name] = {"password_hash": password_hash(EXTRA_PASSWORDS[name])}
    config["teams"]["myteam"]["members"].append("frank")
    config["teams"]["secretteam"] = {"members": ["sam"]}
    config["repositories"] += [
        {"match": "secret/**", "pull": ["team:secretteam"], "push": ["user:sam"],
         "delete": ["user:sam", "user:eve"], "comment": "private; eve may only delete"},
        {"match": "drop/*", "push": ["user:pat"], "comment": "pat's own"},
    ]
    return config


@pytest.fixture(scope="module")
def token_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ec.EllipticCurvePrivateKey]:
    path = tmp_path_factory.mktemp("key") / "token.pem"
    return path, write_key(path)


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
