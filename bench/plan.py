"""How long each figure is measured (full and --quick), and where the samples go."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Plan:
    rounds: int  # blob transfers per path
    load_rounds: int  # wrk runs per path
    load_seconds: float
    latency_rounds: int
    latency_seconds: float
    big_mib: int  # the single-stream blob
    sizes: tuple[int, ...]
    decision_samples: int
    startup_rounds: int
    docker_rounds: int = 1
    cycle_seconds: float = 8  # each wrk run of issue 14's cycled rows


FULL = Plan(rounds=5, load_rounds=3, load_seconds=8, latency_rounds=3, latency_seconds=6,
            big_mib=256, sizes=(100, 1000, 10000), decision_samples=5000, startup_rounds=2,
            docker_rounds=3)
QUICK = Plan(rounds=2, load_rounds=1, load_seconds=3, latency_rounds=1, latency_seconds=3,
             big_mib=256, sizes=(100, 1000, 10000), decision_samples=2000, startup_rounds=1,
             cycle_seconds=2)


@dataclass
class Results:
    machine: dict[str, str]
    plan: dict[str, Any]
    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    latency: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    rss: dict[str, float] = field(default_factory=dict)
    sizes: list[dict[str, float]] = field(default_factory=list)
    cycled: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, metric: str, path: str, value: float) -> None:
        self.samples.setdefault(metric, {}).setdefault(path, []).append(value)
