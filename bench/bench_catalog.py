#!/usr/bin/env python3
"""p95 latency of a /v2/_catalog page, 20,000 repositories, for a user who sees 1% of them.

    python bench/bench_catalog.py [--repositories 20000] [--walks 20] [--before-ref 303c3e0]

Seeds a docker-registry (storage on tmpfs) with `team000/app00000` ... in 100 teams and gives the
user `viewer` pull on one team (1%), then walks the catalog as `viewer` with n=100 (two pages per
walk) against:

- before: the gateway as of --before-ref (extracted with `git archive`): it walks the upstream
  catalog from the start, 1,000 names per request, until it has found a page of visible names;
- after: this checkout, cold (the first walk: no snapshot yet, so only the rule's name range is
  read from the registry) and warm (from the shared snapshot);
- after, with the registry's `catalog.maxentries: 100000` (one upstream walk per snapshot).

distribution 2.8 walks its storage tree from the start on every catalog request, so the cost of
one upstream request grows with how far into the listing its `last=` cursor points.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests"), str(HERE.parent)]

from support.gateway import base_config, password_hash, running_gateway  # noqa: E402
from support.procs import free_port  # noqa: E402
from support.registry import Upstream, registry_config, scratch_dir  # noqa: E402

TEAMS = 100
PASSWORD = "viewer-secret"


@contextmanager
def registry(workdir: Path, maxentries: int | None) -> Iterator[Upstream]:
    root = scratch_dir("rg-bench-catalog-")
    port = free_port()
    upstream = Upstream(workdir, port, storage=root, owns_storage=True, access_log=False)
    extra = f"catalog:\n  maxentries: {maxentries}\n" if maxentries else ""
    upstream.config_path.write_text(registry_config(root, port, access_log=False) + extra)
    upstream.start()
    try:
        yield upstream
    finally:
        upstream.close()


def config(upstream_url: str, port: int, team: int) -> dict[str, Any]:
    cfg = base_config(upstream_url, port)
    cfg["users"]["viewer"] = {"password_hash": password_hash(PASSWORD)}
    cfg["repositories"] = [{"match": f"team{team:03d}/*", "pull": ["user:viewer"]},
                           {"match": "team*/**", "push": ["user:carol"]}]
    return cfg


def get_page(port: int, target: str) -> tuple[float, list[str], str | None]:
    auth = base64.b64encode(f"viewer:{PASSWORD}".encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    conn.request("GET", target, headers={"Authorization": f"Basic {auth}"})
    response = conn.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - started
    conn.close()
    assert response.status == 200, (response.status, body[:200])
    link = response.headers.get("Link")
    return elapsed, json.loads(body)["repositories"], link


def walk(port: int) -> tuple[list[float], list[str]]:
    times, names, target = [], [], "/v2/_catalog?n=100"
    while target:
        elapsed, page, link = get_page(port, target)
        times.append(elapsed)
        names += page
        target = link.split(">")[0].lstrip("<") if link else ""
    return times, names


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def report(label: str, times: list[float]) -> None:
    print(f"{label:<58} pages={len(times):3d}  p50={statistics.median(times) * 1000:8.1f} ms  "
          f"p95={p95(times) * 1000:8.1f} ms  max={max(times) * 1000:8.1f} ms", flush=True)


def source_of(ref: str, into: Path) -> Path:
    """The gateway package as of `ref`, without touching the working tree or the repository."""
    archive = subprocess.run(["git", "-C", str(HERE.parent), "archive", ref, "gateway"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def measure(label: str, upstream: Upstream, workdir: Path, team: int, walks: int,
            expected: list[str], source: Path | None = None) -> None:
    port = free_port()
    env = {"PYTHONPATH": str(source)} if source else {}
    with running_gateway(config(upstream.url, port, team), workdir, port, env=env):
        cold, names = walk(port)
        assert names == expected, (len(names), len(expected))
        report(f"{label}: first walk (cold)", cold)
        if source is None:
            time.sleep(0.2)
            deadline = time.monotonic() + 600
            while walk(port)[0][0] > 0.05 and time.monotonic() < deadline:
                time.sleep(1)  # the snapshot builds in the background
        warm: list[float] = []
        for _ in range(walks):
            times, names = walk(port)
            assert names == expected
            warm += times
        report(f"{label}: {walks} walks", warm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repositories", type=int, default=20_000)
    parser.add_argument("--walks", type=int, default=20)
    parser.add_argument("--before-walks", type=int, default=3)
    parser.add_argument("--team", type=int, default=50, help="the visible team (0-99)")
    parser.add_argument("--before-ref", default="303c3e0",
                        help="git ref of the 'before' gateway; '' skips it")
    args = parser.parse_args()
    per_team = args.repositories // TEAMS
    names = [f"team{t:03d}/app{t * per_team + i:05d}" for t in range(TEAMS) for i in range(per_team)]
    expected = [n for n in names if n.startswith(f"team{args.team:03d}/")]
    print(f"{len(names)} repositories, viewer sees {len(expected)} "
          f"({100 * len(expected) / len(names):.1f}%), n=100 pages", flush=True)
    with tempfile.TemporaryDirectory(prefix="rg-bench-catalog-") as tmp:
        work = Path(tmp)
        with registry(work / "registry", None) as upstream:
            started = time.monotonic()
            upstream.seed(names)
            print(f"seeded in {time.monotonic() - started:.1f} s; registry maxentries 1000",
                  flush=True)
            if args.before_ref:
                source = source_of(args.before_ref, Path(tempfile.mkdtemp(dir=work)))
                measure(f"before ({args.before_ref})", upstream, work / "before", args.team,
                        args.before_walks, expected, source)
            measure("after", upstream, work / "after", args.team, args.walks, expected)
        with registry(work / "registry-big", 100_000) as upstream:
            upstream.seed(names)
            print("registry maxentries 100000", flush=True)
            measure("after, maxentries 100000", upstream, work / "after-big", args.team,
                    args.walks, expected)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
