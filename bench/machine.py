"""What the bench runs on, when it may start, and the small helpers every section shares."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def rotations(items: Sequence[T], rounds: int) -> list[list[T]]:
    """Every round starts with the next path, so no path always runs first (or after a warm-up)."""
    return [[items[(r + i) % len(items)] for i in range(len(items))] for r in range(rounds)]


def load_text() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def wait_for_quiet(max_load: float, wait_seconds: float) -> tuple[float, bool]:
    """Wait (up to `wait_seconds`) until the 1-minute load average is below `max_load`.

    Returns the load average the run starts at and whether it was below the limit: on a shared
    machine the bench may have to start busy, and then says so next to its numbers.
    """
    deadline = time.monotonic() + wait_seconds
    said = False
    while True:
        load = os.getloadavg()[0]
        if load < max_load:
            return load, True
        if time.monotonic() >= deadline:
            log(f"load average still {load:.2f} after {wait_seconds:.0f} s: starting anyway")
            return load, False
        if not said:
            log(f"load average {load:.2f} >= {max_load}: waiting up to {wait_seconds:.0f} s")
            said = True
        time.sleep(5)


def machine() -> dict[str, str]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    tools = {
        "registry": subprocess.run(["docker-registry", "--version"], capture_output=True,
                                   text=True, check=False).stdout.strip(),
        "nginx": subprocess.run(["nginx", "-v"], capture_output=True, text=True,
                                check=False).stderr.strip(),
    }
    mem_kib = int(next(line for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal")).split()[1])
    return {"cpu": f"{os.cpu_count()} x {cpu}", "memory": f"{mem_kib // 1024 // 1024} GiB",
            "kernel": platform.release(), "python": platform.python_version(),
            "load_before": load_text(), **tools}
