#!/usr/bin/env python3
"""A/B: two gateway source trees side by side against one upstream, alternating every round.

    python bench/ab.py A_DIR B_DIR [--rounds N] [--only blob_get,blob_put,pulls16,manifest_bearer,...]

For trying an optimisation: both trees run at once, on the same upstream, in the same minutes of a
noisy machine, so the ratio B/A means something even when the absolute numbers wander. Direct
(the registry itself) runs alongside as the reference. `--cache off` (the default) or `on` sets
`cache.manifests.enabled` in both trees' configs (a tree without the key runs as it is: no cache),
so the manifest rows, which repeat one manifest, measure what they say.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from run import QUICK, Bench, Results, log, machine  # noqa: E402
from stack import Gateway, gateway_config, running_stack  # noqa: E402
from support.procs import free_port  # noqa: E402
from variants import set_cache  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--load-seconds", type=float, default=4)
    parser.add_argument("--only", default="blob_get,blob_put,pulls16,manifest_bearer,manifest_basic,latency")
    parser.add_argument("--cache", choices=("off", "on"), default="off",
                        help="cache.manifests.enabled in both trees (default off: the proxied path)")
    args = parser.parse_args()
    plan = QUICK.__class__(**{**QUICK.__dict__, "rounds": args.rounds, "load_rounds": args.rounds,
                              "latency_rounds": args.rounds, "load_seconds": args.load_seconds,
                              "latency_seconds": args.load_seconds})
    results = Results(machine(), {})
    with running_stack() as stack:
        extra = []
        for name, src in (("A", args.a), ("B", args.b)):
            port = free_port()
            config = gateway_config(stack.upstream.url, port, stack.workdir, stack.redis.url)
            log(f"{name} ({src}): {set_cache(stack, config, args.cache == 'on', src)}")
            gateway = Gateway(stack.workdir, port, config, name=f"ab-{name}", src=src)
            gateway.start()
            extra.append(gateway)
        try:
            bench = Bench(stack, plan, results)
            bench.paths = [stack.direct(), extra[0].endpoint(bench.bearer, "A"),
                           extra[1].endpoint(bench.bearer, "B")]
            bench.setup()
            for section in args.only.split(","):
                log(section)
                getattr(bench, section)()
        finally:
            for gateway in extra:
                gateway.stop()
    print(f"{'metric':<24}{'direct':>12}{'A':>12}{'B':>12}{'B/A':>8}  (medians of {args.rounds}; "
          "*_cpu: CPU s per GiB or us per request)")
    for metric, paths in results.samples.items():
        med = {p: statistics.median(v) for p, v in paths.items()}
        ratio = med["B"] / med["A"] if med.get("A") else float("nan")
        print(f"{metric:<24}{med.get('direct', 0):>12.2f}{med['A']:>12.2f}{med['B']:>12.2f}{ratio:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
