#!/usr/bin/env python3
"""What one access check costs: the decision cache (in-process, Redis) and Basic auth (cache, bcrypt).

    python bench/bench_decisions.py [--rounds 5] [--bcrypt-cost 12]

Starts its own redis-server on loopback (no persistence), builds the gateway's AccessControl on a
config like the tests' (bcrypt cost 12 as in production, unless told otherwise; 500 rules that
start with a wildcard ahead of the one that decides) and times, per
call, in one event loop (uvloop when installed, as `serve` uses):

- decide, warm in-process LRU: the hot path; Redis is never touched;
- decide, warm in Redis only: the LRU is emptied before each call, so every call is one GET;
- decide, no cache: the same pipeline with a cache that always misses: what the rules cost
  (a miss, or every call during a Redis outage while the LRU is cold), with 50 rules the rule
  index skips and with 500 it must try;
- Basic auth with the credential cache: a login the cache has seen (one HMAC);
- Basic auth without it: a bcrypt check (the cost every request would pay).

Each figure is the median over rounds of the mean per call; ratios are against the first row.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import bcrypt
import yaml

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests"), str(HERE.parent)]

from support.redis_server import start_redis  # noqa: E402

from gateway.access import AccessControl  # noqa: E402
from gateway.authn import CredentialCache, PasswordChecker  # noqa: E402
from gateway.cache import (  # noqa: E402
    MISS,
    CachedDecision,
    DecisionCache,
    DecisionKey,
    Lookup,
    MemoryDecisionCache,
)
from gateway.config import CacheSettings, load_config_text  # noqa: E402
from gateway.metrics import Metrics  # noqa: E402
from gateway.redis_client import connect  # noqa: E402
from gateway.redis_decisions import RedisDecisions, TieredDecisionCache  # noqa: E402
from gateway.redis_link import RedisLink  # noqa: E402
from gateway.snapshot import Snapshot, build_snapshot  # noqa: E402
from gateway.stores import MemoryLockoutStore  # noqa: E402
from gateway.tokens import SigningKey, TokenAuthority  # noqa: E402

PASSWORD = "alice-secret"
REPOSITORY = "myteam/app"
Call = Callable[[], Awaitable[object]]


def snapshot_for(cost: int, rules: int, wildcard: bool = False) -> Snapshot:
    """The tests' shape of config, with `rules` filler rules ahead of the one that decides.

    Filler rules starting with a literal component are skipped by the rule index; rules that
    start with a wildcard (`*/team3/**`) must be tried on every name: the worst case.
    """
    password_hash = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=cost)).decode()
    pattern = "*/other{}/**" if wildcard else "other{}/*"
    filler = [{"match": pattern.format(i), "pull": ["authenticated"]} for i in range(rules)]
    config = {
        "server": {"public_url": "http://127.0.0.1:5050"},
        "upstream": {"url": "http://127.0.0.1:5000"},
        "token": {"service": "bench"},
        "users": {"alice": {"password_hash": password_hash}, "bob": {"password_hash": password_hash}},
        "teams": {"myteam": {"members": ["alice"]}},
        "repositories": [*filler, {"match": "myteam/*", "pull": ["team:myteam"]}],
    }
    return build_snapshot(load_config_text(yaml.safe_dump(config), Path(".")))


class NoCache:
    """Every lookup misses: what the rules alone cost, through the same pipeline."""

    async def get(self, key: DecisionKey) -> Lookup:
        return MISS

    async def put(self, key: DecisionKey, value: CachedDecision) -> None:
        return None


def access_control(cache: DecisionCache, passwords: PasswordChecker,
                   snapshot: Snapshot) -> AccessControl:
    key = SigningKey.generate()
    return AccessControl(
        TokenAuthority(key, "bench", "bench", 300, 3600), passwords, cache,
        MemoryLockoutStore(snapshot.settings.auth.lockout), Metrics(), b"a" * 32)


async def per_call(call: Call, iterations: int, rounds: int) -> float:
    """Median over rounds of the mean seconds per call."""
    for _ in range(min(iterations, 100)):
        await call()  # warm-up
    results = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(iterations):
            await call()
        results.append((time.perf_counter() - started) / iterations)
    return statistics.median(results)


async def measure(redis_url: str, cost: int, rounds: int) -> list[tuple[str, float]]:
    snapshot = snapshot_for(cost, rules=500, wildcard=True)
    memory = MemoryDecisionCache(ttl=600, max_entries=100_000)
    checker = PasswordChecker(CredentialCache(600))
    in_process = access_control(memory, checker, snapshot)
    rows: list[tuple[str, float]] = []

    async def memory_hit() -> object:
        return await in_process.decide(snapshot, "alice", REPOSITORY, "pull")

    rows.append(("decide, warm in-process LRU", await per_call(memory_hit, 20_000, rounds)))

    # The timeout does not change what a hit costs; a generous one keeps a busy machine's
    # scheduling stalls from turning hits into fallbacks (which would then be measured instead).
    settings = CacheSettings(redis_url=redis_url, redis_timeout=1.0)
    link_metrics = Metrics()
    async with connect(settings) as client:
        link = RedisLink(link_metrics, settings.redis_timeout)
        link.client = client
        lru = MemoryDecisionCache(ttl=600, max_entries=100_000)
        tiered = TieredDecisionCache(lru, RedisDecisions(link, b"s" * 32, ttl=600))
        through_redis = access_control(tiered, checker, snapshot)
        await through_redis.decide(snapshot, "alice", REPOSITORY, "pull")  # now in Redis

        async def redis_hit() -> object:
            lru.clear()
            return await through_redis.decide(snapshot, "alice", REPOSITORY, "pull")

        rows.append(("decide, warm in Redis (LRU emptied)",
                     await per_call(redis_hit, 3_000, rounds)))
        key = DecisionKey(snapshot.decision_fingerprint, "alice", REPOSITORY, "pull")
        assert await client.exists(key.redis_key())
    fallbacks = link_metrics.registry.get_sample_value(
        "registry_gateway_state_fallbacks_total", {"store": "decisions"}) or 0
    if fallbacks:
        print(f"note: {fallbacks:.0f} Redis calls failed or were skipped; those calls were "
              "decided from the rules, so the Redis row is not clean", file=sys.stderr)

    for rules, wildcard in ((50, False), (500, True)):
        plain = snapshot_for(4, rules, wildcard)
        uncached_rules = access_control(NoCache(), checker, plain)

        async def no_cache(snapshot: Snapshot = plain, access: AccessControl = uncached_rules
                           ) -> object:
            return await access.decide(snapshot, "alice", REPOSITORY, "pull")

        kind = "wildcard-first" if wildcard else "literal-first"
        rows.append((f"decide, no cache ({rules} {kind} rules first)",
                     await per_call(no_cache, 20_000 // (rules // 50), rounds)))

    async def basic_cached() -> object:
        return await in_process.login(snapshot, "alice", PASSWORD, "127.0.0.1")

    rows.append(("Basic auth, credential cache warm", await per_call(basic_cached, 20_000, rounds)))
    uncached = access_control(memory, PasswordChecker(CredentialCache(0)), snapshot)

    async def basic_bcrypt() -> object:
        return await uncached.login(snapshot, "alice", PASSWORD, "127.0.0.1")

    rows.append((f"Basic auth, bcrypt cost {cost} (no cache)",
                 await per_call(basic_bcrypt, 3, rounds)))
    return rows


def print_table(rows: list[tuple[str, float]]) -> None:
    base = rows[0][1]
    width = max(len(name) for name, _ in rows)
    print(f"{'check':<{width}}  {'per call':>12}  {'x in-process hit':>16}")
    for name, seconds in rows:
        print(f"{name:<{width}}  {format_seconds(seconds):>12}  {seconds / base:>16,.1f}")
    basic = [seconds for name, seconds in rows if name.startswith("Basic")]
    print(f"\nBasic auth: bcrypt costs {basic[1] / basic[0]:,.0f}x a credential-cache hit; "
          f"a Redis hit costs {rows[1][1] / rows[0][1]:,.1f}x an in-process one.")


def format_seconds(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:,.2f} ms"
    return f"{seconds * 1e6:,.2f} µs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--bcrypt-cost", type=int, default=12, choices=range(4, 16))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    try:
        import uvloop

        runner: Callable[..., object] = uvloop.run
    except ImportError:
        runner = asyncio.run
    with tempfile.TemporaryDirectory(prefix="bench-decisions-") as workdir:
        redis = start_redis(Path(workdir) / "redis")
        try:
            rows = runner(measure(redis.url, args.bcrypt_cost, args.rounds))
        finally:
            redis.close()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, redis-server on loopback\n")
    print_table(rows)  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main())
