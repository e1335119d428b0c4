"""SIGHUP and config_watch on the real gateway: revocation at once, refusal of broken files."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support import RedisServer, Upstream
from support.credentials import basic, bearer, write_key
from support.gateway import PASSWORDS, RunningGateway, password_hash
from support.http_api import cache_counts, get_token, metrics, start_gateway, status, wait_for_status

Change = Callable[[dict[str, Any]], None]


def remove_alice_from_team(config: dict[str, Any]) -> None:
    config["teams"]["myteam"]["members"] = ["dave"]


def disable_alice(config: dict[str, Any]) -> None:
    config["users"]["alice"]["disabled"] = True


def remove_alice(config: dict[str, Any]) -> None:
    del config["users"]["alice"]
    config["teams"]["myteam"]["members"] = ["dave"]
    config["repositories"][0]["delete"] = []


def delete_the_rule(config: dict[str, Any]) -> None:
    del config["repositories"][0]
    config["teams"]["myteam"]["members"] = ["alice", "dave"]


@pytest.fixture(params=["memory", "redis"])
def any_gateway(request: pytest.FixtureRequest, registry_upstream: Upstream,
                tmp_path: Path) -> Iterator[RunningGateway]:
    """The gateway with in-process state, then with Redis: revocation must not depend on it."""
    options: dict[str, Any] = {}
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        options = {"redis_url": server.url, "key_file": write_key(tmp_path / "token.pem")}
    with start_gateway(tmp_path / "gateway", registry_upstream.url, **options) as gateway:
        yield gateway


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.mark.parametrize("change", [remove_alice_from_team, disable_alice, remove_alice,
                                    delete_the_rule])
async def test_sighup_refuses_an_earlier_token_within_a_second(
        session: aiohttp.ClientSession, any_gateway: RunningGateway, change: Change) -> None:
    gw = any_gateway
    path = "/v2/myteam/revoke/tags/list"
    token = await get_token(session, gw, "alice", "repository:myteam/revoke:pull")
    for _ in range(3):  # the decision is cached now, in-process and (with Redis) in Redis
        assert await status(session, gw, path, bearer(token)) == 404
    config = gw.copy_config()
    change(config)
    gw.reload(config)
    assert await wait_for_status(session, gw, path, bearer(token), 401, within=1.0) < 1.0
    async with session.get(f"{gw.url}{path}", headers=bearer(token)) as response:
        challenge = response.headers["WWW-Authenticate"]
    # A token of an account that is disabled or gone is no longer valid at all.
    expected = "invalid_token" if change in (disable_alice, remove_alice) else "insufficient_scope"
    assert f'error="{expected}"' in challenge
    # Basic credentials, through the credential cache, are refused the same way.
    assert await status(session, gw, path, basic("alice")) == 401


async def test_a_broken_config_keeps_serving_is_counted_and_check_config_refuses_it(
        session: aiohttp.ClientSession, gateway: RunningGateway) -> None:
    path = "/v2/myteam/kept/tags/list"
    assert await status(session, gateway, path, basic("alice")) == 404
    before = await metrics(session, gateway)
    config = gateway.copy_config()
    config["repositories"][0]["pull"].append("team:ops")
    config["teams"]["myteam"]["members"] = []  # would revoke alice, were it applied
    gateway.reload(config)
    error = 'registry_gateway_config_reloads_total{result="error"}'
    deadline = time.monotonic() + 5
    while (await metrics(session, gateway))[error] == before[error]:
        assert time.monotonic() < deadline, "the refused reload was not counted"
        await asyncio.sleep(0.05)
    after = await metrics(session, gateway)
    assert after["registry_gateway_config_last_reload_successful{}"] == 0
    assert await status(session, gateway, path, basic("alice")) == 404  # the old config serves
    assert "reload refused" in gateway.log_text()
    assert "unknown team 'ops'" in gateway.log_text()

    checked = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "check-config", "--config", str(gateway.config_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, stderr = await asyncio.wait_for(checked.communicate(), timeout=60)
    assert checked.returncode == 1
    assert "repositories[0].pull[3]: unknown team 'ops'" in stderr.decode()


async def test_restart_only_settings_are_logged_and_kept(
        session: aiohttp.ClientSession, gateway: RunningGateway, tmp_path: Path) -> None:
    token = await get_token(session, gateway, "alice", "repository:myteam/rs:pull")
    config = gateway.copy_config()
    config["upstream"]["url"] = "http://127.0.0.1:9"  # nothing listens there
    config["token"]["service"] = "another.service"
    config["token"]["key_file"] = str(write_key(tmp_path / "other.pem"))
    config["cache"]["redis_url"] = "redis://127.0.0.1:9/0"
    config["teams"]["myteam"]["members"] = ["dave"]  # this part applies
    gateway.reload(config)
    await wait_for_status(session, gateway, "/v2/myteam/rs/tags/list", bearer(token), 401, 2.0)
    # Refused for want of access, not as a bad token: the old service and key still verify it.
    async with session.get(f"{gateway.url}/v2/myteam/rs/tags/list",
                           headers=bearer(token)) as response:
        assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    # The registry's own 404: the running upstream still serves.
    assert await status(session, gateway, "/v2/library/rs/tags/list", basic("alice")) == 404
    log = gateway.log_text()
    assert "needs a restart to change" in log
    for kept in ("upstream", "token.service", "token.key_file", "cache.redis_url"):
        assert kept in log


async def test_config_watch_applies_an_edit_without_a_signal(
        session: aiohttp.ClientSession, registry_upstream: Upstream, tmp_path: Path) -> None:
    with start_gateway(tmp_path / "gateway", registry_upstream.url, config_watch=True) as gw:
        path = "/v2/myteam/watched/tags/list"
        assert await status(session, gw, path, basic("alice")) == 404
        config = gw.copy_config()
        remove_alice_from_team(config)
        gw.write_config(config)  # no SIGHUP
        await wait_for_status(session, gw, path, basic("alice"), 401, within=5.0)
        counted = await metrics(session, gw)
        assert counted['registry_gateway_config_reloads_total{result="success"}'] == 1


async def test_a_changed_password_is_refused_at_once_despite_the_credential_cache(
        session: aiohttp.ClientSession, gateway: RunningGateway) -> None:
    for _ in range(3):  # cached after the first
        assert await status(session, gateway, "/v2/", basic("alice")) == 200
    config = gateway.copy_config()
    config["users"]["alice"]["password_hash"] = password_hash("alice-new-secret")
    gateway.reload(config)
    await wait_for_status(session, gateway, "/v2/", basic("alice"), 401, within=1.0)
    assert await status(session, gateway, "/v2/", basic("alice", "alice-new-secret")) == 200
    assert PASSWORDS["alice"] != "alice-new-secret"


async def test_a_reload_starts_a_new_decision_namespace_in_redis(
        session: aiohttp.ClientSession, registry_upstream: Upstream, redis_server: RedisServer,
        tmp_path: Path) -> None:
    with start_gateway(tmp_path / "gateway", registry_upstream.url,
                       redis_url=redis_server.url) as gw:
        path = "/v2/myteam/ns/tags/list"
        assert await status(session, gw, path, basic("alice")) == 404
        config = gw.copy_config()
        remove_alice_from_team(config)
        gw.reload(config)
        await wait_for_status(session, gw, path, basic("alice"), 401, within=1.0)
        keys = redis_server.client().keys("rg:d:*")
        fingerprints = {key.removeprefix("rg:d:").split("\x1f")[0] for key in keys}
        assert len(fingerprints) == 2  # the old entries stay, unread, until they expire
        assert (await cache_counts(session, gw))["error"] == 0
