"""Issue 14's rows: the 1,000-image workload cycled by wrk, on direct, cache off and cache on.

Paths: `direct` (the registry), `off` and `on` (two gateway replicas each, one wrk per replica,
summed), and over TLS `direct-tls` (a registry serving TLS), `off-tls`, `on-tls` (one gateway
serving TLS). CPU per request is utime + stime of the path's processes (both replicas) over the
run; the hit rate comes from the replicas' `registry_gateway_content_cache_total` counters.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Protocol

from blobs import Blob, Endpoint, pull_blob
from dockerpull import PullTarget, docker_pulls
from load import Cycle, LoadResult, wrk_together
from machine import log, rotations
from stack import REPOSITORY, Gateway, Stack, basic, cpu_seconds, peak_rss_reset, rss_kib
from variants import (
    TlsRegistry,
    Variant,
    cache_counts,
    cache_supported,
    hit_rate,
    start_variants,
    tls_registry,
)
from workload import ACCEPT, Image, fill_manifests, requests, seed_workload, tokens_for, verify

FILL_REPOSITORY = "bench/fill"
FILL_COUNT, FILL_SIZE = 2300, 32 * 1024  # 72 MiB of manifests: more than the 64 MiB bound
GiB = 1024 ** 3


class Recorder(Protocol):
    def add(self, metric: str, path: str, value: float) -> None: ...


class Plan(Protocol):
    @property
    def load_rounds(self) -> int: ...
    @property
    def load_seconds(self) -> float: ...
    @property
    def latency_rounds(self) -> int: ...
    @property
    def latency_seconds(self) -> float: ...
    @property
    def rounds(self) -> int: ...
    @property
    def cycle_seconds(self) -> float: ...


@dataclass(frozen=True)
class Target:
    name: str
    urls: tuple[str, ...]  # one per replica
    pids: tuple[int, ...]
    gateways: tuple[Gateway, ...] = ()


Auth = Callable[[Image], str]


class CycleBench:
    def __init__(self, stack: Stack, plan: Plan, results: Recorder, variants: dict[str, Variant],
                 images: Sequence[Image], tokens: dict[str, str], tls: TlsRegistry | None) -> None:
        self.stack, self.plan, self.results = stack, plan, results
        self.variants = variants
        self.images = images
        self.tokens = tokens
        self.tls = tls
        direct = stack.direct()
        self.plain = [Target("direct", (f"http://127.0.0.1:{direct.port}",), direct.pids)]
        self.plain += [Target(v.name, tuple(g.url for g in v.replicas), v.pids, v.replicas)
                       for v in variants.values()]
        self.secure: list[Target] = []
        if tls is not None:
            ep = tls.endpoint()
            self.secure.append(Target("direct-tls", (f"https://127.0.0.1:{ep.port}",), ep.pids))
            self.secure += [Target(f"{v.name}-tls", (v.tls.url,), (v.tls.pid,), (v.tls,))
                            for v in variants.values() if v.tls is not None]

    def bearer(self, image: Image) -> str:
        return self.tokens[image.repository]

    def check(self, sample: int = 50) -> None:
        """Every path answers the workload's manifests with the right digests before any load;
        through the cache-on replicas, every manifest once by digest (warm: entries live `ttl`;
        the by-tag rounds warm their tags themselves, see _warm_tags)."""
        every = (*self.plain, *self.secure)
        some = self.images[:: max(1, len(self.images) // sample)]
        for target in every:
            full = self.images if target.name == "on" else some
            endpoints = ([g.endpoint(None, target.name) for g in target.gateways]
                         or [self._direct_endpoint(target)])

            def one(endpoint: Endpoint, full: Sequence[Image] = full) -> None:
                for by, chosen in (("digest", full), ("tag", some)):
                    verify(endpoint, chosen, by, lambda i: {"Accept": ACCEPT,
                                                            "Authorization": self.bearer(i)},
                           threads=4)

            with ThreadPoolExecutor(len(endpoints)) as pool:  # the replicas side by side
                list(pool.map(one, endpoints))
            log(f"checked {len(full)} manifests by digest, {len(some)} by tag, through "
                f"{target.name}")

    def _direct_endpoint(self, target: Target) -> Endpoint:
        if target.name == "direct-tls" and self.tls is not None:
            return self.tls.endpoint()
        return self.stack.direct()

    def _run(self, metric: str, targets: Sequence[Target], by: str, auth: Auth,
             connections: int, seconds: float, rounds: int, one_replica: bool = False) -> None:
        reqs = requests(self.images, by, auth)
        for order in rotations(targets, rounds):
            for target in order:
                urls = target.urls[:1] if one_replica else target.urls
                cycles = [Cycle(url, reqs, offset=k * len(reqs) // len(urls))
                          for k, url in enumerate(urls)]
                counted = target.gateways[:len(urls)]
                if by == "tag" and target.name.startswith("on"):
                    self._warm_tags(counted, auth)
                before = cache_counts(counted) if counted else None
                cpu = cpu_seconds(target.pids)
                result = wrk_together(cycles, max(1, connections // len(urls)), seconds)
                used = cpu_seconds(target.pids) - cpu
                self._record(metric, target.name, result, used)
                rate = hit_rate(before, cache_counts(counted)) if counted else None
                if rate is not None:
                    self.results.add(metric + "_hit", target.name, rate)

    def _warm_tags(self, gateways: Sequence[Gateway], auth: Auth) -> None:
        """Unmeasured, right before a cache-on by-tag round: every tag pulled once through the
        replicas (half each, 4 connections each), so the round measures clients that keep
        pulling these tags, not a first pass after a pause longer than tag_ttl (the other
        paths' rounds last longer than that). The misses that tag_ttl brings in a steady state
        still happen inside a round that outlasts it (full run: 8 s against 5 s)."""
        def one(k: int) -> None:
            verify(gateways[k].endpoint(None, "on"), self.images[k::len(gateways)], "tag",
                   lambda i: {"Accept": ACCEPT, "Authorization": auth(i)}, threads=4)

        with ThreadPoolExecutor(len(gateways)) as pool:
            list(pool.map(one, range(len(gateways))))

    def _record(self, metric: str, name: str, result: LoadResult, cpu: float) -> None:
        self.results.add(metric, name, result.rps)
        self.results.add(metric + "_p50", name, result.p50_ms)
        self.results.add(metric + "_p99", name, result.p99_ms)
        self.results.add(metric + "_cpu", name, cpu / result.requests * 1e6)  # us per request

    def manifest_digest(self) -> None:
        self._run("digest32", self.plain, "digest", self.bearer, 32, self.plan.cycle_seconds,
                  self.plan.load_rounds)

    def manifest_tag(self) -> None:
        self._run("tag32", self.plain, "tag", self.bearer, 32, self.plan.cycle_seconds,
                  self.plan.load_rounds)

    def manifest_tag_basic(self) -> None:
        self._run("basic32", self.plain, "tag", lambda i: basic(), 32, self.plan.cycle_seconds,
                  self.plan.load_rounds)

    def latency_tag(self) -> None:
        """c=1 has one connection, so one replica of each variant."""
        self._run("tag1", self.plain, "tag", self.bearer, 1, self.plan.latency_seconds,
                  self.plan.latency_rounds, one_replica=True)

    def tls_rows(self, big: Blob, bearer: str) -> None:
        if not self.secure:
            return
        self._run("tls_tag32", self.secure, "tag", self.bearer, 32, self.plan.cycle_seconds,
                  self.plan.load_rounds)
        paths = [self.tls.endpoint()] if self.tls is not None else []
        paths += [v.tls.endpoint(bearer, f"{v.name}-tls") for v in self.variants.values()
                  if v.tls is not None and v.name == "off"]  # a 256 MiB blob is never cached
        for order in rotations(paths, self.plan.rounds):
            for path in order:
                cpu = cpu_seconds(path.pids)
                seconds = pull_blob(path, REPOSITORY, big.digest, big.size)
                self.results.add("tls_blob", path.name, big.size / 2 ** 20 / seconds)
                self.results.add("tls_blob_cpu", path.name,
                                 (cpu_seconds(path.pids) - cpu) / (big.size / GiB))

    def cache_rss(self, token: Callable[[str], str]) -> dict[str, Any]:
        """Peak RSS of one replica per variant while 72 MiB of distinct manifests go through it
        (the cache bound is 64 MiB, so "on" ends full)."""
        started = time.perf_counter()
        fill = fill_manifests(self.stack.direct(), FILL_REPOSITORY, FILL_COUNT, FILL_SIZE)
        log(f"pushed {len(fill)} manifests of {FILL_SIZE // 1024} KiB in "
            f"{time.perf_counter() - started:.1f} s")
        auth = "Bearer " + token(f"repository:{FILL_REPOSITORY}:pull")
        out: dict[str, Any] = {}
        for variant in self.variants.values():
            gateway = variant.replicas[0]
            idle = rss_kib(gateway.pid)[0] / 1024
            peak_rss_reset(gateway.pid)
            verify(gateway.endpoint(None, variant.name), fill, "digest",
                   lambda i: {"Accept": ACCEPT, "Authorization": auth}, threads=3)
            peak = rss_kib(gateway.pid)[1] / 1024
            self.results.add("cache_rss", variant.name, peak)
            self.results.add("cache_rss_idle", variant.name, idle)
            out[variant.name] = {"idle_mb": idle, "peak_mb": peak}
        return out


SECTIONS = ("manifest_digest", "manifest_tag", "manifest_tag_basic", "latency_tag", "tls",
            "cache_rss", "docker_pull")


def run_cycled(stack: Stack, plan: Plan, results: Recorder, sections: Sequence[str],
               big: Blob, bearer: str, docker_rounds: int) -> dict[str, Any]:
    """Seed the workload, start the variants, run the chosen sections; what the report needs."""
    with ExitStack() as cleanup:
        with_cache = cache_supported(stack)
        log("the gateway accepts cache.manifests: cache off and on" if with_cache else
            "the gateway refuses cache.manifests (check-config): cache-off rows only")
        tls = certs = None
        if "tls" in sections:
            tls, certs = cleanup.enter_context(tls_registry(stack))
        started = time.perf_counter()
        with ThreadPoolExecutor(1) as pool:  # pushed while the variants boot
            seeding = pool.submit(seed_workload, stack.direct())
            variants = start_variants(stack, cleanup, with_cache, certs,
                                      tls.client if tls else None)
            images = seeding.result()
        log(f"pushed {len(images)} images over {len({i.repository for i in images})} "
            f"repositories in {time.perf_counter() - started:.1f} s")
        bench = CycleBench(stack, plan, results, variants, images,
                           tokens_for(images, stack.gateway.token), tls)
        bench.check()
        out: dict[str, Any] = {"with_cache": with_cache}
        for section in SECTIONS:
            if section not in sections:
                continue
            log(section)
            if section == "tls":
                bench.tls_rows(big, bearer)
            elif section == "cache_rss":
                out["cache_rss"] = bench.cache_rss(stack.gateway.token)
            elif section == "docker_pull":
                targets = [PullTarget("direct", f"127.0.0.1:{stack.upstream.port}",
                                      stack.direct().pids, False)]
                targets += [PullTarget(v.name, f"127.0.0.1:{v.replicas[0].port}",
                                       (v.replicas[0].pid,), True) for v in variants.values()]
                docker_pulls(stack.direct(), targets, docker_rounds, results)
            else:
                getattr(bench, section)()
        return out
