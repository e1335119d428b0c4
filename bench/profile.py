#!/usr/bin/env python3
"""Where the gateway's time goes under one workload: py-spy samples the running process.

    python bench/profile.py manifest_bearer|manifest_basic|manifest_c1|blob_get|blob_put [--seconds N]

Starts the same stack as bench/run.py, puts the workload on the gateway while `py-spy record`
samples it (native frames off, idle frames off), and prints the functions that hold the most
samples: inclusive (the function and what it calls) and self. The collapsed stacks are kept for
a flame graph (`--out`).
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
from load import wrk  # noqa: E402
from stack import REPOSITORY, Stack, basic, running_stack  # noqa: E402

WORKLOADS = ("manifest_bearer", "manifest_basic", "manifest_c1", "blob_get", "blob_put")


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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("workload", choices=WORKLOADS)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--out", type=Path, default=Path("profile.collapsed"))
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        parser.error("py-spy is not installed (pip install py-spy)")
    with running_stack() as stack:
        recorder = subprocess.Popen(
            [py_spy, "record", "--pid", str(stack.gateway.pid), "--format", "raw",
             "--output", str(args.out), "--rate", "200", "--duration", str(int(args.seconds) + 2)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        runner = threading.Thread(target=workload, args=(stack, args.workload, args.seconds))
        runner.start()
        runner.join()
        recorder.wait(timeout=60)
    print(summarize(args.out, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
