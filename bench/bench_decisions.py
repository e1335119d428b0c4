#!/usr/bin/env python3
"""What one access check costs: the decision cache (in-process, Redis) and Basic auth (cache, bcrypt).

    python bench/bench_decisions.py [--rounds 5] [--bcrypt-cost 12]

Starts its own redis-server on loopback (no persistence), builds the gateway's AccessService
(wired as `gateway.app` wires it: the Decider over a decision cache, local accounts behind the
identity backends) on a config like the tests' (bcrypt cost 12 as in production, unless told
otherwise; 500 rules that start with a wildcard ahead of the one that decides) and times, per
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

from support.access import access_service, request_scope  # noqa: E402
from support.redis_server import start_redis  # noqa: E402

from gateway.access.service import AccessService  # noqa: E402
from gateway.config.load import load_config_text  # noqa: E402
from gateway.config.schema import CacheSettings  # noqa: E402
from gateway.identity.passwords import CredentialCache, PasswordChecker  # noqa: E402
from gateway.metrics import Metrics  # noqa: E402
from gateway.policy.subject import Subject  # noqa: E402
from gateway.runtime.snapshot import Snapshot, build_snapshot  # noqa: E402
from gateway.state.decisions import (  # noqa: E402
    MISS,
    CachedDecision,
    DecisionKey,
    Lookup,
    MemoryDecisionCache,
    RedisDecisions,
    TieredDecisionCache,
)
from gateway.state.redis import RedisLink, connect  # noqa: E402

PASSWORD = "alice-secret"
REPOSITORY = "myteam/app"
PULL = ("pull",)
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
        "cache": {"ttl": 600},  # entries outlive every round: a hit stays a hit
        "users": {"alice": {"password_hash": password_hash}, "bob": {"password_hash": password_hash}},
        "teams": {"myteam": {"members": ["alice"]}},
        "repositories": [*filler, {"match": "myteam/*", "pull": ["team:myteam"]}],
    }
    return build_snapshot(load_config_text(yaml.safe_dump(config), Path(".")))


class NoCache:
    """Every lookup misses: what the rules alone cost, through the same pipeline."""

    async def get(self, key: DecisionKey, settings: CacheSettings) -> Lookup:
        return MISS

    async def put(self, key: DecisionKey, value: CachedDecision, settings: CacheSettings) -> None:
        return None


def alice(snapshot: Snapshot) -> Subject:
    subject = snapshot.policy.subject_for("alice")
    assert subject is not None
    return subject


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
    memory = MemoryDecisionCache(max_entries=100_000)
    checker = PasswordChecker(CredentialCache(600))
    in_process = access_service(memory, checker)
    subject = alice(snapshot)
    rows: list[tuple[str, float]] = []

    async def memory_hit() -> object:
        return await in_process.decide(snapshot, subject, REPOSITORY, PULL)

    # Time the path that serves alice, not a refusal that happens to be cheaper.
    assert (await in_process.decide(snapshot, subject, REPOSITORY, PULL)).allowed
    assert await in_process.login(request_scope(snapshot), "alice", PASSWORD) == subject
    rows.append(("decide, warm in-process LRU", await per_call(memory_hit, 20_000, rounds)))

    # The timeout does not change what a hit costs; a generous one keeps a busy machine's
    # scheduling stalls from turning hits into fallbacks (which would then be measured instead).
    settings = CacheSettings(redis_url=redis_url, redis_timeout=1.0)
    link_metrics = Metrics()
    async with connect(settings) as client:
        link = RedisLink(link_metrics, settings.redis_timeout)
        link.client = client
        lru = MemoryDecisionCache(max_entries=100_000)
        tiered = TieredDecisionCache(lru, RedisDecisions(link, b"s" * 32))
        through_redis = access_service(tiered, checker)
        await through_redis.decide(snapshot, subject, REPOSITORY, PULL)  # now in Redis

        async def redis_hit() -> object:
            lru.entries.clear()
            return await through_redis.decide(snapshot, subject, REPOSITORY, PULL)

        rows.append(("decide, warm in Redis (LRU emptied)",
                     await per_call(redis_hit, 3_000, rounds)))
        key = DecisionKey(snapshot.decision_fingerprint, subject.cache_key(), REPOSITORY, "pull")
        assert await client.exists(key.redis_key())
    fallbacks = link_metrics.registry.get_sample_value(
        "registry_gateway_state_fallbacks_total", {"store": "decisions"}) or 0
    if fallbacks:
        print(f"note: {fallbacks:.0f} Redis calls failed or were skipped; those calls were "
              "decided from the rules, so the Redis row is not clean", file=sys.stderr)

    for rules, wildcard in ((50, False), (500, True)):
        plain = snapshot_for(4, rules, wildcard)
        uncached_rules = access_service(NoCache(), checker)
        plain_alice = alice(plain)

        async def no_cache(snapshot: Snapshot = plain, service: AccessService = uncached_rules,
                           who: Subject = plain_alice) -> object:
            return await service.decide(snapshot, who, REPOSITORY, PULL)

        kind = "wildcard-first" if wildcard else "literal-first"
        rows.append((f"decide, no cache ({rules} {kind} rules first)",
                     await per_call(no_cache, 20_000 // (rules // 50), rounds)))

    async def basic_cached() -> object:
        return await in_process.login(request_scope(snapshot), "alice", PASSWORD)

    rows.append(("Basic auth, credential cache warm", await per_call(basic_cached, 20_000, rounds)))
    uncached = access_service(memory, PasswordChecker(CredentialCache(0)))

    async def basic_bcrypt() -> object:
        return await uncached.login(request_scope(snapshot), "alice", PASSWORD)

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
