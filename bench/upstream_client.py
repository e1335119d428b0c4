#!/usr/bin/env python3
"""The upstream small GET: aiohttp's ClientSession against a lean keep-alive HTTP/1.1 client.

    python bench/upstream_client.py [--rounds 5] [--requests 4000] [--concurrency 32]

Against a real docker-registry (storage on tmpfs) holding 100 small images, one process on
uvloop (as the gateway) GETs manifests by digest with `--concurrency` tasks, the way the gateway
forwards a miss: the same request headers (Accept, X-Forwarded-*), the whole body read, the
answer's headers as str pairs. Three clients, alternated round by round in the same run:

- `aiohttp`: a ClientSession configured exactly like gateway/proxy.py's (TCPConnector limit 256,
  keep-alive 30 s, no auto headers, no cookies, read_bufsize 256 KiB, encoded URLs);
- `lean-streams`: a pool of keep-alive connections over asyncio streams
  (`open_connection`), each with one httptools `HttpResponseParser`;
- `lean-protocol`: the same parser fed straight from an `asyncio.Protocol` (no StreamReader).

Reported: CPU of this process (utime + stime) per request, the registry's CPU per request (the
same work on its side, a sanity check) and the rate; medians over the rounds, and the ratios.
Every client first fetches every manifest once with the body checked against its digest.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

import aiohttp  # noqa: E402
import httptools  # noqa: E402
import uvloop  # noqa: E402
from blobs import Endpoint  # noqa: E402
from lean_http import LeanPool, ProtocolPool, Reply  # noqa: E402
from machine import load_text, log, rotations, wait_for_quiet  # noqa: E402
from multidict import CIMultiDict  # noqa: E402
from stack import cpu_seconds  # noqa: E402
from support.procs import remove_tree  # noqa: E402
from support.registry import scratch_dir, start_registry  # noqa: E402
from workload import ACCEPT, Image, seed_workload  # noqa: E402
from yarl import URL  # noqa: E402

# What gateway/proxy.py sends upstream for a manifest GET from a client like wrk or docker.
HEADERS = (("Accept", ACCEPT), ("X-Forwarded-Proto", "http"),
           ("X-Forwarded-Host", "127.0.0.1:5050"))
Get = Callable[[str], Awaitable[Reply]]


class AiohttpClient:
    def __init__(self, base: str) -> None:
        self.base = base
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=30, ttl_dns_cache=60),
            timeout=aiohttp.ClientTimeout(total=None, connect=5, sock_read=300),
            auto_decompress=False, skip_auto_headers=("Accept-Encoding", "User-Agent",
                                                      "Content-Type"),
            read_bufsize=256 * 1024, cookie_jar=aiohttp.DummyCookieJar())

    async def get(self, target: str) -> Reply:
        async with self.session.request("GET", URL(self.base + target, encoded=True),
                                        headers=CIMultiDict(HEADERS),
                                        allow_redirects=False) as response:
            body = await response.read()
            return Reply(response.status, list(response.headers.items()), body, True)

    async def close(self) -> None:
        await self.session.close()


async def _drive(get: Get, targets: Sequence[str], count: int, concurrency: int) -> None:
    position = 0

    async def worker() -> None:
        nonlocal position
        while position < count:
            target = targets[position % len(targets)]
            position += 1
            reply = await get(target)
            if reply.status != 200:
                raise RuntimeError(f"GET {target} answered {reply.status}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _check(get: Get, images: Sequence[Image]) -> None:
    for image in images:
        reply = await get(image.by_digest)
        digest = "sha256:" + hashlib.sha256(reply.body).hexdigest()
        named = dict((k.lower(), v) for k, v in reply.headers).get("docker-content-digest")
        if reply.status != 200 or digest != image.digest or named != image.digest:
            raise RuntimeError(f"{image.by_digest}: status {reply.status}, digest {digest}")


async def measure(port: int, registry_pid: int, images: Sequence[Image], rounds: int,
                  count: int, concurrency: int) -> dict[str, dict[str, list[float]]]:
    base = f"http://127.0.0.1:{port}"
    lean = LeanPool("127.0.0.1", port, HEADERS)
    proto = ProtocolPool("127.0.0.1", port, HEADERS)
    aio = AiohttpClient(base)
    clients: dict[str, Get] = {"aiohttp": aio.get, "lean-streams": lean.get,
                               "lean-protocol": proto.get}
    targets = [image.by_digest for image in images]
    out: dict[str, dict[str, list[float]]] = {name: {"client_us": [], "registry_us": [],
                                                     "rps": []} for name in clients}
    try:
        for get in clients.values():
            await _check(get, images)
            await _drive(get, targets, 500, concurrency)  # warm: the pool's connections
        log(f"every client fetched {len(images)} manifests, digests checked")
        for order in rotations(list(clients), rounds):
            for name in order:
                cpu, upstream = time.process_time(), cpu_seconds((registry_pid,))
                started = time.perf_counter()
                await _drive(clients[name], targets, count, concurrency)
                wall = time.perf_counter() - started
                out[name]["client_us"].append((time.process_time() - cpu) / count * 1e6)
                out[name]["registry_us"].append(
                    (cpu_seconds((registry_pid,)) - upstream) / count * 1e6)
                out[name]["rps"].append(count / wall)
    finally:
        await aio.close()
        lean.close()
        proto.close()
    return out


def report(out: dict[str, dict[str, list[float]]], rounds: int, concurrency: int) -> str:
    med = {name: {k: statistics.median(v) for k, v in figures.items()}
           for name, figures in out.items()}
    base = med["aiohttp"]["client_us"]
    lines = ["| client | client CPU us per request | vs aiohttp (medians) | vs aiohttp (paired "
             "by round) | registry CPU us per request | req/s |", "|---|---:|---:|---:|---:|---:|"]
    for name, figures in med.items():
        spread = "/".join(f"{v:.0f}" for v in out[name]["client_us"])
        # The same round's aiohttp figure: the same minute of a noisy machine.
        paired = statistics.median(x / a for x, a in zip(out[name]["client_us"],
                                                         out["aiohttp"]["client_us"], strict=True))
        lines.append(f"| {name} | {figures['client_us']:.0f} ({spread}) | "
                     f"{figures['client_us'] / base:.2f}x | {paired:.2f}x | "
                     f"{figures['registry_us']:.0f} | {figures['rps']:,.0f} |")
    lines.append(f"\nmedians of {rounds} rounds (each round's figure in brackets), "
                 f"{concurrency} concurrent requests, load average now {load_text()}; "
                 f"httptools {httptools.__version__}, aiohttp {aiohttp.__version__}, "
                 f"uvloop {version('uvloop')}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-load", type=float, default=1.0)
    parser.add_argument("--load-wait", type=float, default=300)
    args = parser.parse_args()
    load, _ = wait_for_quiet(args.max_load, args.load_wait)
    log(f"starting at load average {load:.2f}")
    workdir = scratch_dir("rg-upstream-client-")
    upstream = start_registry(workdir / "registry", access_log=False)
    try:
        assert upstream.process.pid is not None
        images = seed_workload(Endpoint("direct", "127.0.0.1", upstream.port),
                               repositories=10, tags=10)
        log(f"load average {load_text()}; {args.rounds} rounds of {args.requests} GETs")
        out = uvloop.run(measure(upstream.port, upstream.process.pid, images, args.rounds,
                                 args.requests, args.concurrency))
    finally:
        upstream.close()
        remove_tree(workdir)
    print(report(out, args.rounds, args.concurrency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
