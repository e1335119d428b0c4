"""Decision cost versus config size: 100, 1,000 and 10,000 rules and users.

Startup is timed on a real gateway process (spawn to /healthz answering). Decisions are timed
in-process through the app's own AccessService, built by `create_app` and started like the server
(so the decision cache is the configured one, Redis included): an uncached decision is the first
for its (user, repository, action), a cached one repeats a key already answered. The users'
Subjects are looked up before the clock starts (that is authentication's work, not the decision's).
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import uvloop
from stack import Gateway, gateway_config, rss_kib
from support.procs import free_port

WILDCARD_FIRST = 3  # rules no literal first component can index: scanned for every name
PULL = ("pull",)


@dataclass(frozen=True)
class SizeResult:
    size: int
    startup_s: float
    rss_mb: float
    uncached_p50_us: float
    uncached_p99_us: float
    cached_p50_us: float
    cached_p99_us: float


def _rule(i: int, teams: int) -> dict[str, Any]:
    match = (f"org{i}/app", f"org{i}/*", f"org{i}/**", f"org{i}/svc-*/cache")[i % 4]
    return {"match": match, "pull": [f"team:team{i % teams}"], "push": [f"user:user{i}"],
            "delete": [f"user:user{i}"], "comment": f"generated rule {i}"}


def _name_for(i: int, k: int) -> str:
    """A repository name the i-th generated rule matches."""
    return (f"org{i}/app", f"org{i}/x{k}", f"org{i}/a/b{k}", f"org{i}/svc-{k}/cache")[i % 4]


def generated(size: int, password_hash: str) -> tuple[dict[str, Any], list[dict[str, Any]],
                                                        dict[str, Any]]:
    """`size` users, `size` rules (a few with a wildcard first component, last), size/10 teams."""
    teams = max(size // 10, 1)
    users = {f"user{i}": {"password_hash": password_hash} for i in range(size)}
    team_map = {f"team{t}": {"members": [f"user{i}" for i in range(t, size, teams)]}
                for t in range(teams)}
    rules = [_rule(i, teams) for i in range(size - WILDCARD_FIRST)]
    rules += [{"match": "*/shared", "pull": ["authenticated"], "comment": "shared everywhere"},
              {"match": "*/*/mirror", "pull": ["authenticated"], "comment": "mirrors"},
              {"match": "**", "comment": "everything else: nobody"}]
    return users, rules, team_map


def _queries(size: int, count: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    indexed = size - WILDCARD_FIRST
    out = []
    for k in range(count):
        user = f"user{rng.randrange(size)}"
        roll = rng.random()
        if roll < 0.8:
            name = _name_for(rng.randrange(indexed), k)
        elif roll < 0.9:
            name = f"misc{k}/shared"
        else:
            name = f"unmatched{k}/thing"
        out.append((user, name))
    return out


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


async def _time_decisions(configs: dict[int, Path], samples: int
                          ) -> dict[int, tuple[list[float], list[float]]]:
    """Uncached then cached decision times (us) per size, the sizes interleaved query by query
    so that the machine's noise falls on all of them alike."""
    from aiohttp import web

    from gateway.app import create_app
    from gateway.config.load import load_config
    from gateway.http.services import SERVICES
    from gateway.policy.subject import Subject
    from gateway.runtime.snapshot import Snapshot

    def subject(snapshot: Snapshot, user: str) -> Subject:
        found = snapshot.policy.subject_for(user)
        assert found is not None, user
        return found

    runners = {}
    for size, path in configs.items():
        runner = web.AppRunner(create_app(load_config(path), path), handle_signals=False)
        await runner.setup()  # runs cleanup_ctx: the upstream session, Redis
        runners[size] = runner
    try:
        services = {size: runner.app[SERVICES] for size, runner in runners.items()}
        clock = time.perf_counter_ns
        times: dict[int, tuple[list[float], list[float]]] = {s: ([], []) for s in configs}
        fresh = {size: _queries(size, samples, seed=size) for size in configs}
        warm = {size: _queries(size, 500, seed=size + 1) for size in configs}
        for size, queries in warm.items():
            svc = services[size]
            snapshot = svc.holder.current
            for user, name in queries:
                await svc.access.decide(snapshot, subject(snapshot, user), name, PULL)
        for i in range(samples):
            for size in configs:
                svc = services[size]
                snapshot = svc.holder.current
                user, name = fresh[size][i]
                who = subject(snapshot, user)
                started = clock()
                await svc.access.decide(snapshot, who, name, PULL)
                times[size][0].append((clock() - started) / 1000)
                user, name = warm[size][i % len(warm[size])]
                who = subject(snapshot, user)
                started = clock()
                await svc.access.decide(snapshot, who, name, PULL)
                times[size][1].append((clock() - started) / 1000)
        return times
    finally:
        for runner in runners.values():
            await runner.cleanup()


def measure(workdir: Path, upstream_url: str, redis_url: str | None, sizes: tuple[int, ...],
            samples: int, startup_rounds: int) -> list[SizeResult]:
    password_hash = bcrypt.hashpw(b"generated", bcrypt.gensalt(rounds=4)).decode()
    gateways = {}
    for size in sizes:
        users, rules, teams = generated(size, password_hash)
        port = free_port()
        config = gateway_config(upstream_url, port, workdir, redis_url, extra_users=users,
                                rules=rules, teams=teams)
        config["ui"] = {"enabled": False}
        gateways[size] = Gateway(workdir, port, config, name=f"size{size}")
    startup: dict[int, list[float]] = {size: [] for size in sizes}
    rss: dict[int, float] = {}
    for _ in range(startup_rounds):
        for size, gateway in gateways.items():
            gateway.start()
            try:
                rss[size] = rss_kib(gateway.pid)[0] / 1024
            finally:
                gateway.stop()
            startup[size].append(gateway.started_in)
    # The files the processes loaded, so the in-process apps decide under the same configs; on
    # uvloop, as the server runs.
    times = uvloop.run(_time_decisions({s: g.config_path for s, g in gateways.items()}, samples))
    return [
        SizeResult(size, statistics.median(startup[size]), rss[size],
                   statistics.median(times[size][0]), _percentile(times[size][0], 99),
                   statistics.median(times[size][1]), _percentile(times[size][1], 99))
        for size in sizes
    ]
