"""The stores: in-process without Redis, shared with it; opened once; settings read per call.

Stores are built once at start (`build_stores`) and never told about a reload: every call takes
its lockout and cache settings from the request's snapshot, so a reload's new values apply from
the next call on, through the same stores.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import RedisServer, free_port
from support.access import access_service, request_scope
from support.gateway import PASSWORDS, base_config

from gateway.access.request import Refusal
from gateway.config.load import load_config
from gateway.identity.failures import AuthFailure
from gateway.metrics import Metrics
from gateway.policy.subject import Subject
from gateway.runtime.reload import ConfigHolder
from gateway.runtime.snapshot import Snapshot, build_snapshot
from gateway.state.decisions import (
    CachedDecision,
    DecisionCache,
    DecisionKey,
    MemoryDecisionCache,
    TieredDecisionCache,
)
from gateway.state.identities import MemoryIdentities
from gateway.state.identities_redis import SharedIdentities
from gateway.state.lockout import MemoryLockoutStore, SharedLockoutStore
from gateway.state.redis import BreakerState
from gateway.state.stores import Stores, build_stores, open_stores
from gateway.state.uploads import MemoryUploadBindings, SharedUploadBindings

SECRET = b"k" * 32


def config_for(**cache: Any) -> dict[str, Any]:
    config = base_config("http://127.0.0.1:5000", 5050)
    config["cache"].update(cache)
    return config


def write(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snapshot(tmp_path: Path, **cache: Any) -> Snapshot:
    return build_snapshot(load_config(write(tmp_path / "gateway.yaml", config_for(**cache))))


def test_without_redis_everything_is_in_process(tmp_path: Path) -> None:
    stores = build_stores(snapshot(tmp_path).settings.cache, Metrics(), SECRET, SECRET)
    assert stores.link is None
    assert isinstance(stores.decisions, MemoryDecisionCache)
    assert isinstance(stores.lockout, MemoryLockoutStore)
    assert isinstance(stores.uploads, MemoryUploadBindings)
    assert isinstance(stores.identities, MemoryIdentities)


async def test_with_redis_the_stores_are_shared(tmp_path: Path, redis_server: RedisServer) -> None:
    settings = snapshot(tmp_path, redis_url=redis_server.url, redis_timeout=1).settings
    stores = build_stores(settings.cache, Metrics(), SECRET, SECRET)
    assert isinstance(stores.decisions, TieredDecisionCache)
    assert isinstance(stores.lockout, SharedLockoutStore)
    assert isinstance(stores.uploads, SharedUploadBindings)
    assert isinstance(stores.identities, SharedIdentities)
    assert stores.link is not None and stores.link.client is None  # opened by the app
    async with open_stores(stores) as opened:
        assert opened is stores and stores.link.client is not None
        await stores.decisions.put(DecisionKey("f", "alice", "a/b", "pull"),
                                   CachedDecision(True, 0), settings.cache)
        await stores.lockout.record_failure("alice\x1f127.0.0.1", "a", settings.auth.lockout)
        await stores.uploads.bind("upload-1", "alice\x1fa/b")
        raw = redis_server.client()
        assert raw.keys("rg:d:*") and raw.keys("rg:l:*") and raw.keys("rg:u:*")
    assert stores.link.client is None


async def test_a_redis_that_is_down_at_start_does_not_stop_the_app(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    settings = snapshot(tmp_path, redis_url=url).settings
    stores = build_stores(settings.cache, Metrics(), SECRET, SECRET)
    async with open_stores(stores):
        assert stores.link is not None
        assert stores.link.breaker.state is BreakerState.OPEN
        lookup = await stores.decisions.get(DecisionKey("f", "alice", "a/b", "pull"),
                                            settings.cache)
        assert lookup.failed


@pytest.fixture(params=["memory", "redis"])
async def running(request: pytest.FixtureRequest,
                  tmp_path: Path) -> AsyncIterator[tuple[ConfigHolder, Stores]]:
    """A config holder and the stores built from its start settings, as create_app builds them."""
    cache: dict[str, Any] = {"ttl": 60, "max_entries": 100_000}
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        cache |= {"redis_url": server.url, "redis_timeout": 1}
    path = write(tmp_path / "gateway.yaml", config_for(**cache))
    holder = ConfigHolder(path, build_snapshot(load_config(path)))
    stores = build_stores(holder.current.settings.cache, Metrics(), SECRET, SECRET)
    async with open_stores(stores):
        yield holder, stores


async def reload_with(holder: ConfigHolder, **sections: dict[str, Any]) -> Snapshot:
    config = yaml.safe_load(holder.path.read_text())
    for name, values in sections.items():
        config.setdefault(name, {}).update(values)
    write(holder.path, config)
    result = await holder.reload()
    assert result.ok, result.message
    return holder.current


async def test_a_reload_s_lockout_settings_apply_to_the_next_failure(
        running: tuple[ConfigHolder, Stores]) -> None:
    holder, stores = running
    access = access_service(stores.decisions, lockout=stores.lockout)

    async def login(user: str, password: str) -> Subject | Refusal:
        return await access.login(request_scope(holder.current), user, password)

    assert holder.current.settings.auth.lockout.max_failures == 10
    for attempt in range(3):  # under the start settings three failures lock nobody
        refused = await login("bob", f"wrong-{attempt}")
        assert isinstance(refused, Refusal) and refused.reason is AuthFailure.BAD_PASSWORD
    assert await login("bob", PASSWORDS["bob"]) == Subject("bob", "user")
    for attempt in range(2):
        await login("alice", f"wrong-{attempt}")

    await reload_with(holder, auth={"lockout": {"max_failures": 3, "cooldown": 30}})
    third = await login("alice", "wrong-2")
    assert isinstance(third, Refusal) and third.reason is AuthFailure.BAD_PASSWORD
    locked = await login("alice", PASSWORDS["alice"])
    assert isinstance(locked, Refusal) and locked.reason is AuthFailure.LOCKED_OUT
    assert locked.retry_after is not None and 0 < locked.retry_after <= 30


def in_process(decisions: DecisionCache) -> MemoryDecisionCache:
    """The LRU level: the cache itself, or the one in front of Redis."""
    return decisions.memory if isinstance(decisions, TieredDecisionCache) else decisions  # type: ignore[return-value]


async def test_a_reload_s_cache_settings_apply_to_the_next_decision(
        running: tuple[ConfigHolder, Stores], request: pytest.FixtureRequest) -> None:
    holder, stores = running
    access = access_service(stores.decisions, lockout=stores.lockout)
    alice = Subject("alice", "user")
    first = holder.current

    def key(snapshot: Snapshot, repository: str) -> DecisionKey:
        return DecisionKey(snapshot.decision_fingerprint, alice.cache_key(), repository, "pull")

    assert (await access.decide(first, alice, "myteam/warm", ("pull",))).allowed
    second = await reload_with(holder, cache={"ttl": 1, "max_entries": 100})
    assert second.settings.cache.ttl == 1 and second.settings.cache.max_entries == 100
    # Only cache settings changed, not the policy: the warm entry is still found.
    assert second.decision_fingerprint == first.decision_fingerprint
    assert (await stores.decisions.get(key(second, "myteam/warm"), second.settings.cache)).value

    assert (await access.decide(second, alice, "myteam/fresh", ("pull",))).allowed
    if stores.link is not None:  # the Redis copy carries the new TTL, the old one its own
        raw = request.getfixturevalue("redis_server").client()
        assert 0 < raw.pttl(key(second, "myteam/fresh").redis_key()) <= 1000
        assert raw.pttl(key(first, "myteam/warm").redis_key()) > 50_000
    await asyncio.sleep(1.2)
    assert (await stores.decisions.get(key(second, "myteam/fresh"), second.settings.cache)).value is None
    assert (await stores.decisions.get(key(second, "myteam/warm"), second.settings.cache)).value

    for i in range(150):  # the new bound holds from the next put on
        await access.decide(second, alice, f"myteam/app{i}", ("pull",))
    assert len(in_process(stores.decisions)) == 100


async def test_a_new_policy_never_reuses_old_decisions(
        running: tuple[ConfigHolder, Stores]) -> None:
    holder, stores = running
    access = access_service(stores.decisions, lockout=stores.lockout)
    alice = Subject("alice", "user")
    first = holder.current
    assert (await access.decide(first, alice, "myteam/app", ("pull",))).allowed
    # alice leaves the team: new keys, so the cached "allow" is never asked again.
    second = await reload_with(holder, teams={"myteam": {"members": ["dave"]}})
    assert second.decision_fingerprint != first.decision_fingerprint
    verdicts = await access.decide(second, alice, "myteam/app", ("pull",))
    assert not verdicts.allowed
    new_key = DecisionKey(second.decision_fingerprint, "alice", "myteam/app", "pull")
    cached = (await stores.decisions.get(new_key, second.settings.cache)).value
    assert cached == CachedDecision(False, 0)
