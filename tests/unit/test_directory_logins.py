"""DirectoryLogins with a directory that is down (nothing listens on its port): what a
remembered identity still decides, and the generation that keys remembered identities."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import free_port
from support.gateway import base_config

from gateway.config.load import load_config
from gateway.identity.backends import LocalAccounts
from gateway.identity.directory import DirectoryClients, DirectoryLogins, generation_of
from gateway.identity.failures import AuthFailure, IdentityUnavailable
from gateway.identity.passwords import CredentialCache, PasswordChecker
from gateway.metrics import Metrics
from gateway.policy.subject import Subject
from gateway.runtime.snapshot import Snapshot, build_snapshot
from gateway.state.identities import IdentityKeys, MemoryIdentities, Remembered, remembered


def fresh_erin() -> Remembered:
    """erin as the directory vouched for her just now (never at collection: checked_at ages)."""
    return remembered("erin", frozenset({"platform"}), "pwd:20240101120000Z")


def directory_snapshot(tmp_path: Path, **directory: Any) -> Snapshot:
    tmp_path.mkdir(parents=True, exist_ok=True)
    secret = tmp_path / "bind.pw"
    secret.write_text("test-bind-secret\n")
    config = base_config("http://127.0.0.1:5000", 5050)
    config["directory"] = {
        "url": f"ldap://127.0.0.1:{free_port()}", "bind_dn": "cn=registry,dc=example,dc=org",
        "bind_password_file": str(secret), "user_base": "ou=people,dc=example,dc=org",
        "group_base": "ou=groups,dc=example,dc=org", "timeout": 1, "cache_ttl": 60,
        **directory}
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return build_snapshot(load_config(path))


@dataclass
class Down:
    snapshot: Snapshot
    clients: DirectoryClients
    memory: MemoryIdentities
    logins: DirectoryLogins
    metrics: Metrics


@pytest.fixture
async def down(tmp_path: Path) -> AsyncIterator[Down]:
    snapshot = directory_snapshot(tmp_path)
    clients = DirectoryClients()
    clients.configure(snapshot.settings)
    memory, metrics = MemoryIdentities(IdentityKeys(b"s" * 32)), Metrics()
    local = LocalAccounts(PasswordChecker(CredentialCache(60)))
    try:
        yield Down(snapshot, clients, memory, DirectoryLogins(clients, local, metrics, memory),
                   metrics)
    finally:
        await clients.close()


async def test_a_remembered_login_works_while_the_directory_is_down(down: Down) -> None:
    erin = fresh_erin()  # made now: checked_at must be fresh for the test
    await down.memory.remember(down.clients.generation, "erin", "erin-pw", erin, 60)
    subject = await down.logins.verify(down.snapshot, "erin", "erin-pw")
    assert subject == Subject("erin", "directory", frozenset({"platform"}))
    assert isinstance(subject, Subject) and subject.binding == erin.binding


async def test_a_remembered_name_with_another_password_is_401_not_503(down: Down) -> None:
    erin = fresh_erin()  # made now: checked_at must be fresh for the test
    await down.memory.remember(down.clients.generation, "erin", "erin-pw", erin, 60)
    assert await down.logins.verify(down.snapshot, "erin", "wrong") is AuthFailure.BAD_PASSWORD
    errors = down.metrics.registry.get_sample_value(
        "registry_gateway_directory_requests_total", {"operation": "search", "result": "error"})
    assert errors is not None and errors >= 1  # the directory was asked first


async def test_a_name_nobody_remembers_is_unavailable(down: Down) -> None:
    erin = fresh_erin()  # made now: checked_at must be fresh for the test
    await down.memory.remember(down.clients.generation, "erin", "erin-pw", erin, 60)
    with pytest.raises(IdentityUnavailable):
        await down.logins.verify(down.snapshot, "heidi", "heidi-pw")
    # Remembered under other directory settings: as good as forgotten.
    await down.memory.remember("another generation", "bob", "bob-pw",
                               remembered("bob", frozenset(), "pwd:"), 60)
    with pytest.raises(IdentityUnavailable):
        await down.logins.verify(down.snapshot, "bob", "wrong")


async def test_an_empty_password_is_refused_without_asking(down: Down) -> None:
    erin = fresh_erin()  # made now: checked_at must be fresh for the test
    await down.memory.remember(down.clients.generation, "erin", "", erin, 60)
    assert await down.logins.verify(down.snapshot, "erin", "") is AuthFailure.BAD_PASSWORD


def test_the_generation_is_the_settings_not_the_files_or_the_process(tmp_path: Path) -> None:
    one = directory_snapshot(tmp_path / "one").settings.directory
    two = directory_snapshot(tmp_path / "two").settings.directory
    assert one is not None and two is not None
    assert one.bind_password_file != two.bind_password_file
    assert generation_of(one.model_copy(update={"url": two.url})) == generation_of(two)
    changed = [generation_of(two.model_copy(update={field: value})) for field, value in (
        ("user_filter", "(objectClass=inetOrgPerson)"), ("admin_groups", ("admins",)),
        ("cache_ttl", 30), ("group_base", "ou=teams,dc=example,dc=org"))]
    assert generation_of(two) not in changed and len(set(changed)) == len(changed)
    assert generation_of(None) == ""
