#!/usr/bin/env python3
"""How long the first /ui/ page takes to render with 10,000 repositories in the registry.

    python bench/bench_ui.py [--repositories 10000] [--runs 20]

Starts on loopback a docker-registry (storage on tmpfs, repositories seeded straight into it) and
the gateway, signs in through the login form like a browser, then times complete GETs of /ui/
(status and whole body) for three viewers:

- alice: may pull all of them; her first page is the first 50 (one upstream catalog page);
- anonymous: may pull only the last one; the page walks the whole catalog to find it;
- alice searching (?q=) for a name near the end: also a whole walk, with a cheap filter.

For each it prints the first run on a fresh gateway (cold: no decision cached, and the gateway's
catalog snapshot not yet built, so the page walks the registry's catalog), then, once the
snapshot is built, the median and p95 of the steady-state runs.
"""

from __future__ import annotations

import argparse
import http.client
import re
import statistics
import sys
import tempfile
import time
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests"), str(HERE.parent)]

from support import free_port, start_registry  # noqa: E402
from support.gateway import PASSWORDS, base_config, running_gateway  # noqa: E402


class Browser:
    """Just enough of a browser: one connection, cookies for /ui, no redirects followed."""

    def __init__(self, port: int) -> None:
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, bytes]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self._conn.request(method, path, body=body, headers=headers)
        response = self._conn.getresponse()
        data = response.read()
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                if morsel.value and morsel["max-age"] != "0":
                    self.cookies[name] = morsel.value
                else:
                    self.cookies.pop(name, None)
        return response.status, data

    def login(self, user: str) -> None:
        status, page = self.request("GET", "/ui/login")
        found = re.search(rb'name="csrf_token" value="([^"]+)"', page)
        assert status == 200 and found, "no login form"
        form = urlencode({"csrf_token": found.group(1).decode(), "username": user,
                          "password": PASSWORDS[user]})
        status, _ = self.request("POST", "/ui/login", form)
        assert status == 303 and "rg_session" in self.cookies, f"login failed: {status}"

    def close(self) -> None:
        self._conn.close()


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def timed(browser: Browser, path: str, expect: bytes) -> tuple[float, int]:
    started = time.perf_counter()
    status, body = browser.request("GET", path)
    elapsed = time.perf_counter() - started
    assert status == 200 and expect in body, f"{path}: {status}"
    return elapsed, len(body)


def settle(browser: Browser, path: str, expect: bytes, timeout: float = 60.0) -> float:
    """Seconds until the page stops getting faster (the catalog snapshot is built)."""
    started = time.perf_counter()
    best = float("inf")
    steady = 0
    while steady < 5 and time.perf_counter() - started < timeout:
        elapsed, _ = timed(browser, path, expect)
        steady = steady + 1 if elapsed < max(1.5 * best, best + 0.05) else 0
        best = min(best, elapsed)
        time.sleep(0.2)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repositories", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    count = args.repositories
    last = f"bulk/r{count - 1:05d}"

    with tempfile.TemporaryDirectory(prefix="bench-ui-") as scratch:
        upstream = start_registry(Path(scratch) / "registry", access_log=False)
        try:
            started = time.perf_counter()
            upstream.seed(f"bulk/r{i:05d}" for i in range(count))
            print(f"seeded {count} repositories in {time.perf_counter() - started:.2f} s")
            port = free_port()
            config = base_config(upstream.url, port)
            config["repositories"] += [
                {"match": last, "visibility": "public", "comment": "the one public repository"},
                {"match": "bulk/**", "pull": ["team:myteam"], "comment": "team repositories"},
            ]
            with running_gateway(config, Path(scratch) / "gateway", port):
                alice, anonymous = Browser(port), Browser(port)
                alice.login("alice")
                cases = [
                    ("alice, first page (50 of 10,000)", alice, "/ui/", b"bulk/r00049"),
                    ("anonymous (1 visible, walks all)", anonymous, "/ui/", last.encode()),
                    ("alice, search near the end", alice, "/ui/?q=r0999", last.encode()),
                ]
                cold = {label: timed(browser, path, expect)[0]
                        for label, browser, path, expect in cases}
                waited = settle(*cases[0][1:])
                print(f"steady after {waited:.1f} s (the gateway's catalog snapshot is built)")
                print(f"{'GET /ui/':36} {'cold':>9} {'median':>9} {'p95':>9} {'page':>9}")
                for label, browser, path, expect in cases:
                    runs = [timed(browser, path, expect) for _ in range(args.runs)]
                    warm = [elapsed for elapsed, _ in runs]
                    print(f"{label:36} {cold[label] * 1000:7.1f}ms "
                          f"{statistics.median(warm) * 1000:7.1f}ms {p95(warm) * 1000:7.1f}ms "
                          f"{runs[-1][1] / 1024:7.1f}KB")
                alice.close()
                anonymous.close()
        finally:
            upstream.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
