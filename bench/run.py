#!/usr/bin/env python3
"""registry-gateway side by side with the registry it protects (direct) and nginx's auth proxy.

    python bench/run.py [--quick] [--only blob_get,manifest_tag,...] [--json FILE] [--keep]
                        [--max-load 1.0] [--load-wait SECONDS]

Starts on loopback: docker-registry (storage on tmpfs), redis-server, nginx (the Docker docs'
htpasswd recipe) and the gateway (with Redis), then measures each path against the same upstream,
alternating the order every round, and prints one table with ratios to direct and to nginx and
which of the issue's goals are met. The medians of the rounds are reported. Every pulled blob and
manifest is checked against its digest. `RG_BENCH_GATEWAY_SRC=DIR` runs the gateway from another
source tree (an A/B comparison against the same upstream).

Issue 14's rows (bench/cycle.py) cycle 1,000 manifests over 100 repositories on the registry and
on two gateway replicas sharing Redis, with `cache.manifests` off and on (on only when the
gateway accepts the key), plus TLS and `docker pull` rows; a second table shows them. A run
starts once the load average is below --max-load (waiting up to --load-wait seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests"),
                os.environ.get("RG_BENCH_GATEWAY_SRC", str(HERE.parent))]

from blobs import (  # noqa: E402
    MANIFEST_TYPE,
    Blob,
    Endpoint,
    MiB,
    check_manifest,
    pull_blob,
    push_blob,
    push_image,
)
from configsize import SizeResult, measure  # noqa: E402
from cycle import SECTIONS as CYCLED  # noqa: E402
from cycle import run_cycled  # noqa: E402
from load import LoadResult, wrk  # noqa: E402
from machine import load_text, log, machine, rotations, wait_for_quiet  # noqa: E402
from plan import FULL, QUICK, Plan, Results  # noqa: E402
from report import Row, goal_rows, render  # noqa: E402
from report_cache import cache_rows, render_cache  # noqa: E402
from stack import (  # noqa: E402
    REPOSITORY,
    Stack,
    basic,
    cpu_seconds,
    peak_rss_reset,
    rss_kib,
    running_stack,
)
from variants import baseline_without_cache  # noqa: E402

GiB = 1024 * MiB

BEFORE = ("blob_get", "blob_put", "pulls16", "manifest_bearer", "manifest_basic", "latency")
AFTER = ("rss", "config_size")
SECTIONS = (*BEFORE, *CYCLED, *AFTER)


class Bench:
    def __init__(self, stack: Stack, plan: Plan, results: Results) -> None:
        self.stack = stack
        self.plan = plan
        self.results = results
        gateway = stack.gateway
        self.token = gateway.token(f"repository:{REPOSITORY}:pull,push")
        self.bearer = "Bearer " + self.token
        self.paths = [stack.direct(), stack.via_nginx(), gateway.endpoint(self.bearer)]
        self.big = Blob(1, plan.big_mib * MiB)
        self.small = [Blob(1000 + i, 16 * MiB) for i in range(16)]
        self.huge = Blob(2, 1024 * MiB)
        self.seed = 10_000

    def setup(self) -> None:
        direct = self.stack.direct()
        log("seeding the upstream: blobs and a manifest")
        with ThreadPoolExecutor(3) as pool:  # the registry hashes each: two cores, not one
            list(pool.map(lambda blob: push_blob(direct, REPOSITORY, blob),
                          (self.huge, self.big, *self.small)))
        self.manifest_digest, _ = push_image(direct, REPOSITORY, "v1", Blob(3, 4096))
        for path in self.paths:
            check_manifest(path, REPOSITORY, "v1", self.manifest_digest)

    def _add_cpu(self, metric: str, path: Endpoint, since: float, per: float) -> None:
        """CPU time the path's processes spent, per unit of work (a noise-robust cost)."""
        self.results.add(metric + "_cpu", path.name, (cpu_seconds(path.pids) - since) / per)

    def blob_get(self) -> None:
        for order in rotations(self.paths, self.plan.rounds):
            for path in order:
                cpu = cpu_seconds(path.pids)
                seconds = pull_blob(path, REPOSITORY, self.big.digest, self.big.size)
                self.results.add("blob_get", path.name, self.big.size / MiB / seconds)
                self._add_cpu("blob_get", path, cpu, self.big.size / GiB)

    def blob_put(self) -> None:
        for order in rotations(self.paths, self.plan.rounds):
            for path in order:
                self.seed += 1
                blob = Blob(self.seed, self.big.size)
                _ = blob.digest  # hashed before the clock starts
                cpu = cpu_seconds(path.pids)
                seconds = push_blob(path, REPOSITORY, blob)
                self.results.add("blob_put", path.name, blob.size / MiB / seconds)
                self._add_cpu("blob_put", path, cpu, blob.size / GiB)
                self._drop_from_storage(blob.digest)

    def _drop_from_storage(self, digest: str) -> None:
        """Free the tmpfs: the bench never reads a pushed blob back."""
        hexa = digest.split(":", 1)[1]
        data = (self.stack.upstream.root / "docker/registry/v2/blobs/sha256" / hexa[:2] / hexa
                / "data")
        data.unlink(missing_ok=True)

    def pulls16(self) -> None:
        for order in rotations(self.paths, self.plan.rounds):
            for path in order:
                total = sum(b.size for b in self.small)
                cpu = cpu_seconds(path.pids)
                self.results.add("pulls16", path.name, total / MiB / self._parallel_pull(path))
                self._add_cpu("pulls16", path, cpu, total / GiB)

    def _parallel_pull(self, path: Endpoint) -> float:
        start = threading.Barrier(len(self.small) + 1)

        def one(blob: Blob) -> None:
            conn = path.connect()
            try:
                start.wait()
                pull_blob(path, REPOSITORY, blob.digest, blob.size, conn)
            finally:
                conn.close()

        with ThreadPoolExecutor(len(self.small)) as pool:
            futures = [pool.submit(one, blob) for blob in self.small]
            start.wait()
            began = time.perf_counter()
            for future in futures:
                future.result()
            return time.perf_counter() - began

    def _manifest_url(self, path: Endpoint) -> str:
        return f"http://127.0.0.1:{path.port}/v2/{REPOSITORY}/manifests/v1"

    def _load(self, metric: str, authorization: Callable[[Endpoint], str]) -> None:
        for order in rotations(self.paths, self.plan.load_rounds):
            for path in order:
                headers = {"Authorization": authorization(path), "Accept": MANIFEST_TYPE}
                cpu = cpu_seconds(path.pids)
                result = wrk(self._manifest_url(path), headers, 32, self.plan.load_seconds)
                self._add_load(metric, path.name, result)
                self._add_cpu(metric, path, cpu, result.requests / 1e6)  # us per request

    def _add_load(self, metric: str, name: str, result: LoadResult) -> None:
        self.results.add(metric, name, result.rps)
        self.results.add(metric + "_p50", name, result.p50_ms)
        self.results.add(metric + "_p99", name, result.p99_ms)

    def manifest_bearer(self) -> None:
        # nginx's recipe has no tokens: its clients send Basic on every request, so that is its row.
        self._load("manifest_bearer", lambda p: basic() if p.name == "nginx" else self.bearer)

    def manifest_basic(self) -> None:
        self._load("manifest_basic", lambda p: basic())

    def latency(self) -> None:
        for order in rotations(self.paths, self.plan.latency_rounds):
            for path in order:
                auth = basic() if path.name == "nginx" else self.bearer
                headers = {"Authorization": auth, "Accept": MANIFEST_TYPE}
                cpu = cpu_seconds(path.pids)
                result = wrk(self._manifest_url(path), headers, 1, self.plan.latency_seconds, 1)
                self._add_load("c1", path.name, result)
                self._add_cpu("c1", path, cpu, result.requests / 1e6)

    def rss(self) -> None:
        """The gateway's peak RSS while 1 GiB goes through it each way (GET, then PUT)."""
        gateway = self.stack.gateway
        pid = gateway.pid
        before = rss_kib(pid)[0]
        peak_rss_reset(pid)
        sampled = [before]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.02):
                sampled.append(rss_kib(pid)[0])

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        path = gateway.endpoint(self.bearer)
        try:
            seconds_get = pull_blob(path, REPOSITORY, self.huge.digest, self.huge.size)
            self.seed += 1
            blob = Blob(self.seed, self.huge.size)
            _ = blob.digest
            seconds_put = push_blob(path, REPOSITORY, blob)
            self._drop_from_storage(blob.digest)
        finally:
            done.set()
            sampler.join()
        hwm = rss_kib(pid)[1]
        self.results.rss = {"before_mb": before / 1024, "peak_mb": max(max(sampled), hwm) / 1024,
                            "get_mb_s": 1024 / seconds_get, "put_mb_s": 1024 / seconds_put}

    def config_size(self) -> None:
        measured: list[SizeResult] = measure(
            self.stack.workdir, self.stack.upstream.url, self.stack.redis.url, self.plan.sizes,
            self.plan.decision_samples, self.plan.startup_rounds)
        self.results.sizes = [asdict(result) for result in measured]


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer rounds, shorter runs (~3 min)")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help="comma-separated sections: " + ", ".join(SECTIONS))
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--keep", action="store_true", help="keep logs and configs")
    parser.add_argument("--max-load", type=float, default=1.0,
                        help="start once the 1-minute load average is below this (default 1)")
    parser.add_argument("--load-wait", type=float, default=None,
                        help="wait at most this many seconds for it, then start anyway "
                             "(300; 60 with --quick)")
    args = parser.parse_args(argv)
    if args.load_wait is None:
        args.load_wait = 60.0 if args.quick else 300.0
    args.sections = [s for s in args.only.split(",") if s]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    sections = args.sections
    plan = QUICK if args.quick else FULL
    load, quiet = wait_for_quiet(args.max_load, args.load_wait)
    results = Results(machine(), asdict(plan))
    results.machine["load_start"] = f"{load:.2f}" + (
        "" if quiet else f" (BUSY: not below {args.max_load} within {args.load_wait:.0f} s)")
    log(f"starting at load average {load:.2f}")
    started = time.perf_counter()
    with running_stack(keep=args.keep) as stack:
        baseline_without_cache(stack)
        bench = Bench(stack, plan, results)
        bench.setup()
        for section in (s for s in BEFORE if s in sections):
            log(section)
            getattr(bench, section)()
        cycled = [s for s in CYCLED if s in sections]
        if cycled:
            results.cycled = run_cycled(stack, plan, results, cycled, bench.big, bench.bearer,
                                        plan.docker_rounds)
        for section in (s for s in AFTER if s in sections):
            log(section)
            getattr(bench, section)()
    results.seconds = time.perf_counter() - started
    results.machine["load_after"] = load_text()
    rows: list[Row] = goal_rows(results.samples, results.rss, results.sizes)
    if rows or not cycled:
        print(render(rows, results.machine, results.seconds, args.quick))
    else:
        print(f"{'quick' if args.quick else 'full'} run, {results.seconds:.0f} s. Machine: "
              + ", ".join(f"{k} {v}" for k, v in results.machine.items()))
    if cycled:
        workload = ("Workload: 1,000 distinct manifests (config + one 1 KiB layer each) over 100 "
                    "repositories, cycled by wrk; off/on: two replicas sharing Redis, one wrk "
                    "per replica; medians of the rounds.")
        print("\n" + render_cache(cache_rows(results.samples, results.cycled["with_cache"]),
                                  workload))
    if args.json:
        args.json.write_text(json.dumps(asdict(results), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
