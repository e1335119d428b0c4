#!/usr/bin/env python3
"""More cores: N gateway replicas behind nginx as a load balancer, sharing Redis and the token key.

    python bench/replicas.py [--rounds N] [--seconds S]

Measures, alternating every round, manifest GETs (c=32, Bearer and Basic) and 16 concurrent
16 MiB pulls on: the registry itself (direct), one gateway on its own, and nginx balancing over 1
and over 2 gateways. Every replica has the same `token.key_file` (a token from one is good at all),
the same Redis (lockout, upload bindings and decisions shared) and `public_url` = the balancer.
The config is docs/performance.md's "Running N replicas".
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from blobs import Endpoint  # noqa: E402
from nginx import Nginx  # noqa: E402
from run import QUICK, Bench, Results, log, machine  # noqa: E402
from stack import Gateway, gateway_config, process_tree, running_stack  # noqa: E402
from support.procs import free_port  # noqa: E402
from variants import baseline_without_cache, set_cache  # noqa: E402

BALANCER_EXTRA = """
        location /token {
            proxy_pass http://docker-registry;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }
"""
SECTIONS = ("manifest_bearer", "manifest_basic", "pulls16")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6)
    args = parser.parse_args()
    plan = replace(QUICK, rounds=args.rounds, load_rounds=args.rounds,
                   load_seconds=args.seconds)
    results = Results(machine(), {})
    with running_stack() as stack, contextlib.ExitStack() as cleanup:
        baseline_without_cache(stack)  # one manifest, repeated: the proxied path, not the cache
        lb_ports = {1: free_port(), 2: free_port()}
        replicas: list[Gateway] = []
        for i in range(2):
            port = free_port()
            config = gateway_config(stack.upstream.url, port, stack.workdir, stack.redis.url)
            # Behind the balancer: its URL is the public one, and its address is trusted for
            # X-Forwarded-For (so lockout counts the real client).
            config["server"]["trusted_proxies"] = ["127.0.0.1/32"]
            config["server"]["public_url"] = f"http://127.0.0.1:{lb_ports[2]}"
            set_cache(stack, config, False)
            gateway = Gateway(stack.workdir, port, config, name=f"replica{i}")
            gateway.start()
            cleanup.callback(gateway.stop)
            replicas.append(gateway)
        balancers = {}
        for count, port in lb_ports.items():
            balancer = Nginx(stack.workdir / f"lb{count}", port,
                             [f"127.0.0.1:{g.port}" for g in replicas[:count]], htpasswd=None,
                             extra=BALANCER_EXTRA)
            balancer.start()
            cleanup.callback(balancer.stop)
            balancers[count] = balancer
        bench = Bench(stack, plan, results)

        def via(count: int) -> Endpoint:
            balancer = balancers[count]
            assert balancer.process.pid is not None
            pids = (*process_tree(balancer.process.pid), *(g.pid for g in replicas[:count]))
            return Endpoint(f"lb->{count}", "127.0.0.1", balancer.port, bench.bearer, pids)

        bench.paths = [stack.direct(), replicas[0].endpoint(bench.bearer, "1 gateway"),
                       via(1), via(2)]
        bench.setup()
        for section in SECTIONS:
            log(section)
            getattr(bench, section)()
    names = ["direct", "1 gateway", "lb->1", "lb->2"]
    print("| figure | " + " | ".join(names) + " | lb->2 / lb->1 |")
    print("|---|" + "---:|" * (len(names) + 1))
    for metric, paths in results.samples.items():
        med = {p: statistics.median(v) for p, v in paths.items()}
        cells = " | ".join(f"{med.get(n, 0):,.1f}" for n in names)
        print(f"| {metric} | {cells} | {med['lb->2'] / med['lb->1']:.2f}x |")
    print(f"\nmedians of {args.rounds} rounds; *_cpu: CPU s per GiB or us per request of the "
          "path's processes (balancer + replicas). Machine: "
          + ", ".join(f"{k} {v}" for k, v in results.machine.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
