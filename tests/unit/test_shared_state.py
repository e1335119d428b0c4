"""SharedState: in-process without Redis, tiered with it; opened once; reload-time settings applied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from support import RedisServer, free_port
from support.gateway import base_config

from gateway.cache import CachedDecision, DecisionKey, MemoryDecisionCache
from gateway.config import load_config
from gateway.metrics import Metrics
from gateway.redis_breaker import BreakerState
from gateway.redis_decisions import TieredDecisionCache
from gateway.redis_stores import SharedLockoutStore, SharedUploadBindings
from gateway.snapshot import Snapshot, build_snapshot
from gateway.state import SharedState, open_shared_state


def snapshot(tmp_path: Path, **cache: Any) -> Snapshot:
    config = base_config("http://127.0.0.1:5000", 5050)
    config["cache"].update(cache)
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    return build_snapshot(load_config(path))


def test_without_redis_everything_is_in_process(tmp_path: Path) -> None:
    shared = SharedState(snapshot(tmp_path).settings, Metrics(), b"k" * 32)
    assert shared.link is None
    assert isinstance(shared.decisions, MemoryDecisionCache)
    assert shared.lockout is shared.memory_lockout
    assert shared.uploads is shared.memory_uploads


async def test_with_redis_the_stores_are_shared(tmp_path: Path, redis_server: RedisServer) -> None:
    settings = snapshot(tmp_path, redis_url=redis_server.url, redis_timeout=1).settings
    shared = SharedState(settings, Metrics(), b"k" * 32)
    assert isinstance(shared.decisions, TieredDecisionCache)
    assert isinstance(shared.lockout, SharedLockoutStore)
    assert isinstance(shared.uploads, SharedUploadBindings)
    assert shared.link is not None and shared.link.client is None  # opened by the app
    async with open_shared_state(shared):
        assert shared.link.client is not None
        await shared.decisions.put(DecisionKey("f", "alice", "a/b", "pull"), CachedDecision(True, 0))
        assert redis_server.client().keys("rg:d:*")
    assert shared.link.client is None


async def test_a_redis_that_is_down_at_start_does_not_stop_the_app(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    shared = SharedState(snapshot(tmp_path, redis_url=url).settings, Metrics(), b"k" * 32)
    async with open_shared_state(shared):
        assert shared.link is not None
        assert shared.link.breaker.state is BreakerState.OPEN
        lookup = await shared.decisions.get(DecisionKey("f", "alice", "a/b", "pull"))
        assert lookup.failed


def test_a_reload_applies_cache_and_lockout_settings(tmp_path: Path,
                                                     redis_server: RedisServer) -> None:
    first = snapshot(tmp_path, redis_url=redis_server.url)
    shared = SharedState(first.settings, Metrics(), b"k" * 32)
    shared.apply(first)
    key = DecisionKey(first.decision_fingerprint, "alice", "a/b", "pull")
    shared.memory_decisions.put_now(key, CachedDecision(True, 0))

    config = yaml.safe_load((tmp_path / "gateway.yaml").read_text())
    config["cache"].update({"ttl": 7, "max_entries": 500})
    config["auth"] = {"lockout": {"max_failures": 2}}
    (tmp_path / "gateway.yaml").write_text(yaml.safe_dump(config))
    second = build_snapshot(load_config(tmp_path / "gateway.yaml"))
    shared.apply(second)
    assert shared.memory_decisions.ttl == 7 and shared.memory_decisions.max_entries == 500
    assert shared.memory_lockout.settings.max_failures == 2
    assert isinstance(shared.lockout, SharedLockoutStore)
    assert shared.lockout.redis.settings.max_failures == 2
    assert isinstance(shared.decisions, TieredDecisionCache)
    assert shared.decisions.shared.ttl == 7
    # The policy did not change: the warm entries stay.
    assert shared.memory_decisions.get_now(key) is not None

    config["teams"]["myteam"]["members"] = []
    (tmp_path / "gateway.yaml").write_text(yaml.safe_dump(config))
    shared.apply(build_snapshot(load_config(tmp_path / "gateway.yaml")))
    assert len(shared.memory_decisions) == 0  # a new policy: the old entries are dead weight
