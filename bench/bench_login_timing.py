#!/usr/bin/env python3
"""Does the token endpoint take as long for an unknown user as for a wrong password?

    python bench/bench_login_timing.py [--rounds 40] [--cost 12]

Starts the gateway (no registry is needed for logins) with accounts hashed at --cost, and one
account hashed at cost 5 (what `htpasswd -B` produces by default), then times GET /token with
Basic credentials, interleaving the cases so drift hits them all alike:

- a known user with a wrong password; an unknown user; a disabled user with its right password;
- the cost-5 user with a wrong password: the case `check-config` warns about, since its fast
  check sets that user apart from unknown ones.

The lockout is set high so that every attempt really checks a password.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import statistics
import sys
import tempfile
import time
from pathlib import Path

import bcrypt

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests"), str(HERE.parent)]

from support.gateway import base_config, running_gateway  # noqa: E402
from support.procs import free_port  # noqa: E402

CASES = {
    "known user, wrong password": ("alice", "wrong-password"),
    "unknown user": ("mallory", "wrong-password"),
    "disabled user, right password": ("dave", "dave-secret"),
    "cost-5 user, wrong password": ("weak", "wrong-password"),
}


def timed_login(port: int, user: str, password: str) -> tuple[float, int]:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    started = time.perf_counter()
    conn.request("GET", "/token?service=gateway.test", headers={"Authorization": f"Basic {auth}"})
    response = conn.getresponse()
    response.read()
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed, response.status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--cost", type=int, default=12)
    args = parser.parse_args()

    def hashed(password: str, cost: int = args.cost) -> str:
        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost)).decode()

    port = free_port()
    config = base_config("http://127.0.0.1:1", port)
    config["users"] = {"alice": {"password_hash": hashed("alice-secret")},
                       "carol": {"password_hash": hashed("carol-secret"), "admin": True},
                       "dave": {"password_hash": hashed("dave-secret"), "disabled": True},
                       "weak": {"password_hash": hashed("weak-secret", 5)}}
    config["service_accounts"] = {}
    config["teams"] = {"myteam": {"members": ["alice"]}}
    config["repositories"] = config["repositories"][1:]  # the public rule only
    config["auth"] = {"lockout": {"max_failures": 1_000_000}, "credential_cache_ttl": 0}
    with tempfile.TemporaryDirectory(prefix="rg-bench-login-") as tmp, \
            running_gateway(config, Path(tmp), port):
        for user, password in CASES.values():  # warm up: imports, thread pool, connections
            timed_login(port, user, password)
        samples: dict[str, list[float]] = {case: [] for case in CASES}
        statuses: dict[str, set[int]] = {case: set() for case in CASES}
        for _ in range(args.rounds):
            for case, (user, password) in CASES.items():
                elapsed, status = timed_login(port, user, password)
                samples[case].append(elapsed)
                statuses[case].add(status)
    print(f"GET /token with Basic credentials, {args.rounds} rounds, accounts at bcrypt cost "
          f"{args.cost}")
    for case, times in samples.items():
        ordered = sorted(times)
        print(f"  {case:<32} status {sorted(statuses[case])}  "
              f"median {statistics.median(times) * 1000:7.1f} ms  "
              f"p95 {ordered[int(0.95 * (len(ordered) - 1))] * 1000:7.1f} ms")
    gap = statistics.median(samples["unknown user"]) - \
        statistics.median(samples["known user, wrong password"])
    print(f"  unknown minus known (median): {gap * 1000:+.1f} ms")


if __name__ == "__main__":
    main()
