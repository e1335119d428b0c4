#!/usr/bin/env python3
"""Where the gateway's time goes under one workload: py-spy samples the running process.

    python bench/profile.py manifest_bearer|manifest_basic|manifest_c1|blob_get|blob_put [--seconds N]
    python bench/profile.py cycle_tag|cycle_digest [--seconds N]   # with the CPU split

`cycle_tag` / `cycle_digest`: issue 14's workload (1,000 manifests over 100 repositories, one
token per repository, wrk c=32 cycling them by tag or by digest), every GET a miss that goes
upstream. The CPU per
request is measured first without the profiler, then the profiled run's
samples are split into the parts of a request (bench/cpusplit.py) and priced in microseconds.

Starts the same stack as bench/run.py, puts the workload on the gateway while `py-spy record`
samples it (native frames off, idle frames off), and prints the functions that hold the most
samples: inclusive (the function and what it calls) and self. The collapsed stacks are kept for
a flame graph or speedscope (`--out`; speedscope imports the collapsed format as it is).
Every workload runs with `cache.manifests.enabled: false` (the miss path) unless --with-cache,
which sets it true; a gateway tree without the key runs as it is (it has no cache).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from blobs import MANIFEST_TYPE, Blob, MiB, pull_blob, push_blob, push_image  # noqa: E402
from cpusplit import split, table  # noqa: E402
from load import Cycle, wrk, wrk_cycle  # noqa: E402
from machine import load_text, wait_for_quiet  # noqa: E402
from stack import REPOSITORY, Stack, basic, cpu_seconds, running_stack  # noqa: E402
from variants import baseline_without_cache  # noqa: E402
from workload import requests, seed_workload, tokens_for  # noqa: E402

WORKLOADS = ("manifest_bearer", "manifest_basic", "manifest_c1", "blob_get", "blob_put",
             "cycle_tag", "cycle_digest")


def workload(stack: Stack, name: str, seconds: float) -> None:
    gateway = stack.gateway
    bearer = "Bearer " + gateway.token(f"repository:{REPOSITORY}:pull,push")
    if name.startswith("manifest"):
        push_image(stack.direct(), REPOSITORY, "v1", Blob(3, 4096))
        auth = basic() if name == "manifest_basic" else bearer
        connections = 1 if name == "manifest_c1" else 32
        wrk(f"http://127.0.0.1:{gateway.port}/v2/{REPOSITORY}/manifests/v1",
            {"Authorization": auth, "Accept": MANIFEST_TYPE}, connections, seconds)
        return
    path = gateway.endpoint(bearer)
    blob = Blob(1, 256 * MiB)
    if name == "blob_get":
        push_blob(stack.direct(), REPOSITORY, blob)
    deadline = time.monotonic() + seconds
    seed = 100
    while time.monotonic() < deadline:
        if name == "blob_get":
            pull_blob(path, REPOSITORY, blob.digest, blob.size)
        else:
            seed += 1
            push_blob(path, REPOSITORY, Blob(seed, 256 * MiB))


def summarize(collapsed: Path, top: int) -> str:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = stack.split(";")
        if any(f.startswith("Thread._bootstrap ") for f in frames):
            continue  # worker threads (bcrypt, file I/O) mostly wait; the event loop is the story
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    out = [f"{total} samples"]
    for title, counter in (("inclusive", inclusive), ("self", own)):
        out.append(f"\n-- {title} --")
        for frame, count in counter.most_common(top):
            out.append(f"{100 * count / total:5.1f}%  {frame}")
    return "\n".join(out)


class Cycled:
    """Issue 14's workload on the stack's gateway: seeded once, then wrk runs of it."""

    def __init__(self, stack: Stack, by: str) -> None:
        self.stack = stack
        images = seed_workload(stack.direct())
        tokens = tokens_for(images, stack.gateway.token)
        self.cycle = Cycle(stack.gateway.url, requests(images, by, lambda i: tokens[i.repository]))

    def cpu_per_request(self, seconds: float) -> tuple[float, float]:
        """(us of gateway CPU per request, req/s) over one wrk run."""
        pids = (self.stack.gateway.pid,)
        before = cpu_seconds(pids)
        result = wrk_cycle(self.cycle, 32, seconds)
        return (cpu_seconds(pids) - before) / result.requests * 1e6, result.rps


def record(py_spy: str, pid: int, out: Path, seconds: float, work: threading.Thread) -> None:
    recorder = subprocess.Popen(
        [py_spy, "record", "--pid", str(pid), "--format", "raw", "--output", str(out),
         "--rate", "200", "--duration", str(int(seconds) + 2)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    work.start()
    work.join()
    recorder.wait(timeout=60)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("workload", choices=WORKLOADS)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--out", type=Path, default=Path("profile.collapsed"))
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--with-cache", action="store_true",
                        help="run the gateway with its content cache on (default: off, "
                             "the miss path)")
    parser.add_argument("--max-load", type=float, default=1.0)
    parser.add_argument("--load-wait", type=float, default=300)
    args = parser.parse_args()
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        parser.error("py-spy is not installed (pip install py-spy)")
    load, _ = wait_for_quiet(args.max_load, args.load_wait)
    print(f"load average at the start: {load:.2f}")
    with running_stack() as stack:
        # Explicit either way (a gateway's default is on): off, every GET goes upstream.
        baseline_without_cache(stack, enabled=args.with_cache)
        pid = stack.gateway.pid
        if not args.workload.startswith("cycle_"):
            work = threading.Thread(target=workload, args=(stack, args.workload, args.seconds))
            record(py_spy, pid, args.out, args.seconds, work)
            print(summarize(args.out, args.top))
            return 0
        cycled = Cycled(stack, args.workload.removeprefix("cycle_"))
        cycled.cpu_per_request(2)  # warm: connections, token and decision caches
        plain_us, plain_rps = cycled.cpu_per_request(args.seconds)
        profiled: list[tuple[float, float]] = []
        work = threading.Thread(target=lambda: profiled.append(
            cycled.cpu_per_request(args.seconds)))
        record(py_spy, pid, args.out, args.seconds, work)
    print(summarize(args.out, args.top))
    print(f"\nwithout the profiler: {plain_us:,.0f} us of gateway CPU per request at "
          f"{plain_rps:,.0f} req/s; profiled: {profiled[0][0]:,.0f} us at {profiled[0][1]:,.0f} "
          "req/s\n")
    total, parts, frames_of = split(args.out)
    print(table(total, parts, plain_us, frames_of))
    print(f"\nload average at the end: {load_text()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
