"""The results table: medians per path, ratios to direct and to nginx, and the issue's goals."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Samples = Mapping[str, Mapping[str, Sequence[float]]]
FLAT = 1.5  # "flat": the 10,000 figure within 1.5x the 100 figure (plus timer noise below)
FLAT_SLACK_US = 3.0


@dataclass(frozen=True)
class Row:
    label: str
    direct: str
    nginx: str
    gateway: str
    vs_direct: str
    vs_nginx: str
    goal: str
    met: bool | None  # None: no goal for this row


def _median(samples: Samples, metric: str, path: str) -> float | None:
    values = samples.get(metric, {}).get(path)
    return statistics.median(values) if values else None


def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _throughput(samples: Samples, metric: str, label: str, digits: int,
                min_direct: float | None, min_nginx: float | None) -> Row | None:
    d, n, g = (_median(samples, metric, p) for p in ("direct", "nginx", "gateway"))
    if g is None:
        return None
    rd, rn = _ratio(g, d), _ratio(g, n)
    goals, met = [], None
    if min_direct is not None:
        goals.append(f">= {min_direct}x direct")
        met = rd is not None and rd >= min_direct
    if min_nginx is not None:
        goals.append(f">= {min_nginx}x nginx")
        met = bool(met) and rn is not None and rn >= min_nginx
    return Row(label, _fmt(d, digits), _fmt(n, digits), _fmt(g, digits),
               _fmt(rd, 2) + "x" if rd else "-", _fmt(rn, 2) + "x" if rn else "-",
               ", ".join(goals) or "-", met)


def _cost(samples: Samples, metric: str, label: str, digits: int) -> Row | None:
    """CPU per unit of work: lower is better, so the ratios read "times the cost of"."""
    d, n, g = (_median(samples, metric, p) for p in ("direct", "nginx", "gateway"))
    if g is None:
        return None
    rd, rn = _ratio(g, d), _ratio(g, n)
    return Row(label, _fmt(d, digits), _fmt(n, digits), _fmt(g, digits),
               _fmt(rd, 2) + "x" if rd else "-", _fmt(rn, 2) + "x" if rn else "-", "-", None)


def _latency_pair(samples: Samples, metric: str, label: str) -> Row | None:
    cells = []
    for path in ("direct", "nginx", "gateway"):
        p50, p99 = _median(samples, metric + "_p50", path), _median(samples, metric + "_p99", path)
        cells.append(f"{_fmt(p50, 2)} / {_fmt(p99, 2)}")
    if _median(samples, metric + "_p50", "gateway") is None:
        return None
    return Row(label, cells[0], cells[1], cells[2], "", "", "-", None)


def _added(samples: Samples, pct: str, limit_ms: float) -> Row | None:
    metric = "c1_" + pct
    direct = samples.get(metric, {}).get("direct", [])
    gateway = samples.get(metric, {}).get("gateway", [])
    nginx = samples.get(metric, {}).get("nginx", [])
    if not direct or not gateway:
        return None
    # Paired by round: the same minute of a noisy machine on both sides.
    added = statistics.median(g - d for g, d in zip(gateway, direct, strict=False))
    added_nginx = (statistics.median(n - d for n, d in zip(nginx, direct, strict=False))
                   if nginx else None)
    return Row(f"manifest GET c=1 {pct} (ms)", _fmt(statistics.median(direct), 3),
               _fmt(_median(samples, metric, "nginx"), 3), _fmt(statistics.median(gateway), 3),
               f"{added:+.3f} ms",
               "-" if added_nginx is None else f"nginx {added_nginx:+.3f} ms",
               f"added <= {limit_ms} ms", added <= limit_ms)


def goal_rows(samples: Samples, rss: Mapping[str, float],
              sizes: Sequence[Mapping[str, float]]) -> list[Row]:
    candidates = [
        _throughput(samples, "blob_get", "blob GET 256 MiB, 1 stream (MiB/s)", 0, 0.9, 1.1),
        _cost(samples, "blob_get_cpu", "  CPU s per GiB [2]", 2),
        _throughput(samples, "blob_put", "blob PUT 256 MiB, 1 stream (MiB/s)", 0, 0.8, 1.0),
        _cost(samples, "blob_put_cpu", "  CPU s per GiB [2]", 2),
        _throughput(samples, "pulls16", "16 concurrent pulls x 16 MiB (MiB/s)", 0, 0.9, None),
        _cost(samples, "pulls16_cpu", "  CPU s per GiB [2]", 2),
        _throughput(samples, "manifest_bearer", "manifest GET c=32 Bearer (req/s) [1]", 0, 0.75,
                    None),
        _latency_pair(samples, "manifest_bearer", "  p50 / p99 (ms)"),
        _cost(samples, "manifest_bearer_cpu", "  CPU us per request [2]", 0),
        _throughput(samples, "manifest_basic", "manifest GET c=32 Basic (req/s)", 0, 0.6, None),
        _latency_pair(samples, "manifest_basic", "  p50 / p99 (ms)"),
        _cost(samples, "manifest_basic_cpu", "  CPU us per request [2]", 0),
        _added(samples, "p50", 0.5),
        _added(samples, "p99", 2.0),
        _cost(samples, "c1_cpu", "  CPU us per request at c=1 [2]", 0),
    ]
    rows = [row for row in candidates if row is not None]
    if rss:
        rows.append(Row("gateway peak RSS, 1 GiB GET + PUT (MB)", "", "",
                        f"{rss['peak_mb']:.0f}", f"idle {rss['before_mb']:.0f} MB", "",
                        "<= 150 MB", rss["peak_mb"] <= 150))
    rows.extend(_size_rows(sizes))
    return rows


def _size_rows(sizes: Sequence[Mapping[str, float]]) -> list[Row]:
    if not sizes:
        return []
    rows = []
    first, last = sizes[0], sizes[-1]
    for key, label in (("startup_s", "startup (s)"),
                       ("uncached_p99_us", "uncached decision p99 (p50) (us)"),
                       ("cached_p99_us", "cached decision p99 (p50) (us)")):
        if key == "startup_s":
            values = " / ".join(_fmt(s[key], 2) for s in sizes)
        else:
            median = key.replace("p99", "p50")
            values = " / ".join(f"{_fmt(s[key])} ({_fmt(s[median])})" for s in sizes)
        growth = _ratio(last[key], first[key])
        if key == "startup_s":
            goal, met = "-", None
        else:
            goal = f"flat: {int(last['size']):,} <= {FLAT}x {int(first['size']):,}"
            met = last[key] <= FLAT * first[key] + FLAT_SLACK_US
        names = "/".join(f"{int(s['size']):,}" for s in sizes)
        rows.append(Row(f"config {names}: {label}", "", "", values,
                        f"{_fmt(growth, 2)}x", "", goal, met))
    return rows


def render(rows: Sequence[Row], machine: Mapping[str, str], seconds: float, quick: bool) -> str:
    header = ("| figure | direct | nginx | gateway | gateway/direct | gateway/nginx | goal | met |\n"
              "|---|---:|---:|---:|---:|---:|---|---|")
    lines = [header]
    for row in rows:
        met = "-" if row.met is None else ("yes" if row.met else "**no**")
        lines.append(f"| {row.label} | {row.direct} | {row.nginx} | {row.gateway} | "
                     f"{row.vs_direct} | {row.vs_nginx} | {row.goal} | {met} |")
    goals = [r for r in rows if r.met is not None]
    summary = f"{sum(1 for r in goals if r.met)} of {len(goals)} goals met"
    notes = [
        "",
        f"{summary}; {'quick' if quick else 'full'} run, {seconds:.0f} s; medians of the rounds.",
        "[1] nginx's recipe has no tokens: its column is Basic (bcrypt checked on every request).",
        "[2] CPU time of the process(es) on the path: the registry for direct, nginx's workers, "
        "the gateway; less noisy than rates on a shared machine.",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()),
    ]
    return "\n".join(lines + notes)
