"""ConfigHolder: atomic swap, refusal of a broken file, restart-only values kept, the file watch."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.access import access_service, request_scope
from support.credentials import write_key
from support.gateway import PASSWORDS, base_config, password_hash

from gateway.config.load import load_config
from gateway.identity import passwords
from gateway.identity.passwords import CredentialCache, PasswordChecker
from gateway.policy.subject import Subject
from gateway.runtime.reload import ConfigHolder, watch_file
from gateway.runtime.snapshot import Snapshot, build_snapshot


def write(path: Path, config: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.fixture
def config() -> dict[str, Any]:
    return base_config("http://127.0.0.1:5000", 5050)


@pytest.fixture
def holder(tmp_path: Path, config: dict[str, Any]) -> ConfigHolder:
    path = tmp_path / "gateway.yaml"
    write(path, config)
    return ConfigHolder(path, build_snapshot(load_config(path)))


async def test_a_valid_file_is_swapped_in_with_a_new_fingerprint(
        holder: ConfigHolder, config: dict[str, Any]) -> None:
    before = holder.current
    seen: list[Snapshot] = []
    holder.on_change(seen.append)
    config["teams"]["myteam"]["members"] = ["dave"]
    write(holder.path, config)
    result = await holder.reload()
    assert result.ok and result.changed
    assert holder.current is not before and seen == [holder.current]
    assert holder.current.fingerprint != before.fingerprint
    assert holder.current.decision_fingerprint != before.decision_fingerprint


async def test_a_broken_file_is_refused_and_the_old_config_stays(
        holder: ConfigHolder, config: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    before = holder.current
    config["repositories"][0]["pull"].append("team:ops")
    write(holder.path, config)
    result = await holder.reload()
    assert not result.ok
    assert holder.current is before
    assert "repositories[0].pull[3]: unknown team 'ops'" in caplog.text


async def test_restart_only_values_are_kept_and_logged(
        holder: ConfigHolder, config: dict[str, Any], caplog: pytest.LogCaptureFixture,
        tmp_path: Path) -> None:
    write_key(tmp_path / "token.pem")
    config["upstream"]["url"] = "http://127.0.0.1:6000"
    config["server"]["listen"] = "127.0.0.1:6060"
    config["cache"] = {"ttl": 5, "redis_url": "redis://127.0.0.1:6379/0", "redis_timeout": 1}
    config["token"]["key_file"] = str(tmp_path / "token.pem")
    config["auth"] = {"lockout": {"max_failures": 2}}
    write(holder.path, config)
    with caplog.at_level(logging.WARNING, "registry_gateway.reload"):
        result = await holder.reload()
    assert result.ok
    settings = holder.current.settings
    assert settings.upstream.url == "http://127.0.0.1:5000"
    assert settings.server.listen == "127.0.0.1:5050"
    assert settings.cache.redis_url is None and settings.cache.redis_timeout == 0.05
    assert settings.token.key_file is None
    # ...while what a reload may change, changes.
    assert settings.cache.ttl == 5 and settings.auth.lockout.max_failures == 2
    for kept in ("server", "upstream", "cache.redis_url", "cache.redis_timeout", "token.key_file"):
        assert kept in result.message and kept in caplog.text


async def test_settings_outside_the_policy_keep_the_decision_fingerprint(
        holder: ConfigHolder, config: dict[str, Any]) -> None:
    before = holder.current
    config["cache"]["ttl"] = 30
    config["audit"] = {"file": "/tmp/audit.jsonl"}
    write(holder.path, config)
    assert (await holder.reload()).ok
    assert holder.current.fingerprint != before.fingerprint
    assert holder.current.decision_fingerprint == before.decision_fingerprint


def test_file_changed_sees_content_not_touches(holder: ConfigHolder) -> None:
    assert not holder.file_changed()
    os.utime(holder.path, ns=(1, 1))  # another mtime, same content
    assert not holder.file_changed()
    holder.path.write_text(holder.path.read_text() + "\n# edited\n")
    assert holder.file_changed()
    holder.mark_seen()
    assert not holder.file_changed()


def test_file_changed_sees_the_htpasswd_file(tmp_path: Path, config: dict[str, Any]) -> None:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"erin:{password_hash('erin-secret')}\n")
    config["htpasswd_file"] = "htpasswd"
    path = tmp_path / "gateway.yaml"
    write(path, config)
    holder = ConfigHolder(path, build_snapshot(load_config(path)))
    assert not holder.file_changed()
    htpasswd.write_text(htpasswd.read_text() + f"frank:{password_hash('x')}\n")
    assert holder.file_changed()


async def test_the_watch_reloads_only_when_config_watch_is_on(
        holder: ConfigHolder, config: dict[str, Any]) -> None:
    triggered = asyncio.Event()
    watcher = asyncio.create_task(watch_file(holder, triggered.set, interval=0.02))
    try:
        holder.path.write_text(holder.path.read_text() + "\n# edited\n")
        await asyncio.sleep(0.1)
        assert not triggered.is_set()  # config_watch is off
        config["config_watch"] = True
        write(holder.path, config)
        assert (await holder.reload()).ok
        config["teams"]["myteam"]["members"] = []
        write(holder.path, config)
        await asyncio.wait_for(triggered.wait(), timeout=2)
    finally:
        watcher.cancel()


async def test_a_reload_invalidates_cached_credentials(
        holder: ConfigHolder, config: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    checks: list[bytes] = []
    real_checkpw = passwords._checkpw

    def counting_checkpw(password: bytes, password_hash: bytes) -> bool:
        checks.append(password)
        return real_checkpw(password, password_hash)

    monkeypatch.setattr(passwords, "_checkpw", counting_checkpw)
    access = access_service(passwords=PasswordChecker(CredentialCache(60)))

    async def login() -> object:
        # Each request carries the snapshot current when it started.
        return await access.login(request_scope(holder.current), "alice", PASSWORDS["alice"])

    assert await login() == Subject("alice", "user")
    assert await login() == Subject("alice", "user")
    assert len(checks) == 1  # the second came from the credential cache
    config["teams"]["myteam"]["members"] = ["alice"]
    write(holder.path, config)
    assert (await holder.reload()).ok
    assert await login() == Subject("alice", "user")
    assert len(checks) == 2  # a reload dropped the cached success
