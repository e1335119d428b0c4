"""Issue 14's table: the cycled workload on direct, cache off and cache on, with its goals."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Samples = Mapping[str, Mapping[str, Sequence[float]]]
NO_CACHE = "n/a (no cache.manifests)"
VARIANTS = ("off", "on")


@dataclass(frozen=True)
class Goal:
    """A goal per variant: at least (or, for costs, at most) this; None: no goal."""

    off: float | None = None
    on: float | None = None
    kind: str = "ratio>="  # "ratio>=", "ratio<=" (of direct), "added<=" (ms), "value<=" (abs)

    def text(self) -> str:
        parts = []
        for name in VARIANTS:
            limit = getattr(self, name)
            if limit is None:
                continue
            if self.kind == "added<=":
                parts.append(f"{name} <= +{limit} ms")
            elif self.kind == "value<=":
                parts.append(f"{name} <= {limit:,.0f}")
            else:
                parts.append(f"{name} {self.kind[-2:]} {limit}x direct")
        return ", ".join(parts) or "-"


@dataclass(frozen=True)
class CacheRow:
    label: str
    cells: tuple[str, ...]  # direct, off, on
    vs: tuple[str, ...]  # off / direct, on / direct
    goal: str
    met: str


def _median(samples: Samples, metric: str, path: str) -> float | None:
    values = samples.get(metric, {}).get(path)
    return statistics.median(values) if values else None


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


class Table:
    def __init__(self, samples: Samples, with_cache: bool, prefix: str = "") -> None:
        self.samples = samples
        self.with_cache = with_cache
        self.prefix = prefix  # "" or "-tls": the path names' suffix
        self.rows: list[CacheRow] = []

    def _paths(self) -> tuple[str, str, str]:
        return ("direct" + self.prefix, "off" + self.prefix, "on" + self.prefix)

    def _cell(self, metric: str, path: str, digits: int) -> str:
        value = _median(self.samples, metric, path)
        if path.startswith("on") and not self.with_cache:
            return NO_CACHE
        return _fmt(value, digits)

    def _met(self, goal: Goal, values: Mapping[str, float | None]) -> str:
        verdicts = []
        for name in VARIANTS:
            limit = getattr(goal, name)
            if limit is None:
                continue
            value = values.get(name)
            if name == "on" and not self.with_cache:
                verdicts.append(f"{name} n/a")
            elif value is None:
                verdicts.append(f"{name} -")
            else:
                ok = value >= limit if goal.kind == "ratio>=" else value <= limit
                verdicts.append(f"{name} {'yes' if ok else '**no**'}")
        return ", ".join(verdicts) or "-"

    def ratio(self, metric: str, label: str, goal: Goal = Goal(), digits: int = 0) -> None:
        """A rate or a cost next to direct's; the ratio is the variant's over direct's."""
        paths = self._paths()
        direct = _median(self.samples, metric, paths[0])
        ratios: dict[str, float | None] = {}
        for name, path in zip(VARIANTS, paths[1:], strict=True):
            value = _median(self.samples, metric, path)
            ratios[name] = value / direct if value is not None and direct else None
        if all(_median(self.samples, metric, p) is None for p in paths):
            return
        vs = tuple(NO_CACHE if n == "on" and not self.with_cache else
                   (f"{r:.2f}x" if r is not None else "-") for n, r in ratios.items())
        self.rows.append(CacheRow(label, tuple(self._cell(metric, p, digits) for p in paths),
                                  vs, goal.text(), self._met(goal, ratios) if goal.off or goal.on
                                  else "-"))

    def pair(self, metric: str, label: str) -> None:
        """p50 / p99 per path."""
        cells = []
        for path in self._paths():
            if path.startswith("on") and not self.with_cache:
                cells.append(NO_CACHE)
                continue
            p50 = _median(self.samples, metric + "_p50", path)
            p99 = _median(self.samples, metric + "_p99", path)
            cells.append("-" if p50 is None else f"{p50:.2f} / {_fmt(p99, 2)}")
        if any(c not in ("-", NO_CACHE) for c in cells):
            self.rows.append(CacheRow(label, tuple(cells), ("", ""), "-", "-"))

    def hit_rate(self, metric: str) -> None:
        if not self.samples.get(metric):
            return
        cells = ["-"]
        for path in self._paths()[1:]:
            if path.startswith("on") and not self.with_cache:
                cells.append(NO_CACHE)
                continue
            value = _median(self.samples, metric + "_hit", path)
            cells.append("n/a" if value is None else f"{100 * value:.1f}%")
        self.rows.append(CacheRow("  cache hit rate [4]", tuple(cells), ("", ""), "-", "-"))

    def added(self, metric: str, label: str, goal: Goal) -> None:
        """Gateway minus direct, paired by round (the same minute of a noisy machine)."""
        paths = self._paths()
        direct = self.samples.get(metric, {}).get(paths[0], [])
        if not direct:
            return
        added: dict[str, float | None] = {}
        for name, path in zip(VARIANTS, paths[1:], strict=True):
            values = self.samples.get(metric, {}).get(path, [])
            added[name] = (statistics.median(g - d for g, d in zip(values, direct, strict=False))
                           if values else None)
        vs = tuple(NO_CACHE if n == "on" and not self.with_cache else
                   ("-" if a is None else f"{a:+.3f} ms") for n, a in added.items())
        self.rows.append(CacheRow(label, tuple(self._cell(metric, p, 3) for p in paths),
                                  vs, goal.text(), self._met(goal, added)))

    def value(self, metric: str, label: str, goal: Goal, digits: int = 0) -> None:
        """An absolute figure of the gateway alone (CPU per request, RSS)."""
        paths = self._paths()
        values = {n: _median(self.samples, metric, p) for n, p in zip(VARIANTS, paths[1:],
                                                                      strict=True)}
        if all(v is None for v in values.values()):
            return
        cells = ("", *(self._cell(metric, p, digits) for p in paths[1:]))
        self.rows.append(CacheRow(label, cells, ("", ""), goal.text(),
                                  self._met(goal, values)))


def cache_rows(samples: Samples, with_cache: bool) -> list[CacheRow]:
    t = Table(samples, with_cache)
    for metric, label, goal in (
        ("digest32", "manifest GET by digest, c=32, Bearer (req/s)", Goal(None, 1.3)),
        ("tag32", "manifest GET by tag, c=32, Bearer (req/s)", Goal(0.75, 1.0)),
        ("basic32", "manifest GET by tag, c=32, Basic (req/s)", Goal(0.75, 0.9)),
    ):
        t.ratio(metric, label, goal)
        t.pair(metric, "  p50 / p99 (ms) [3]")
        t.ratio(metric + "_cpu", "  CPU us per request [2]")
        t.hit_rate(metric)
    t.added("tag1_p50", "manifest GET by tag, c=1, p50 (ms)", Goal(0.8, 0.3, "added<="))
    t.added("tag1_p99", "manifest GET by tag, c=1, p99 (ms)", Goal())
    t.ratio("tag1_cpu", "  CPU us per request at c=1 [2]")
    t.hit_rate("tag1")
    t.value("tag32_cpu", "gateway CPU per uncached manifest GET (us) [5]",
            Goal(600, None, "value<="))
    t.value("cache_rss", "peak RSS of a replica, 72 MiB of manifests through it (MB) [6]",
            Goal(None, 150, "value<="))
    t.value("cache_rss_idle", "  RSS of that replica before the fill (MB)", Goal())
    t.ratio("docker_pull", "`docker pull` 8 x 5-layer images (~40 MB) at once (s)",
            Goal(1.05, 1.05, "ratio<="), 2)
    t.ratio("docker_pull_cpu", "  CPU s of the path's processes [2]", Goal(), 2)
    s = Table(samples, with_cache, "-tls")
    s.ratio("tls_tag32", "TLS: manifest GET by tag, c=32, Bearer (req/s) [7]")
    s.pair("tls_tag32", "  p50 / p99 (ms)")
    s.ratio("tls_tag32_cpu", "  CPU us per request [2]")
    s.ratio("tls_blob", "TLS: blob GET 256 MiB, 1 stream (MiB/s) [7]")
    s.ratio("tls_blob_cpu", "  CPU s per GiB [2]", digits=2)
    return t.rows + s.rows


NOTES = [
    "[2] utime + stime of the path's processes: the registry for direct, both replicas for off/on.",
    "[3] two wrk processes, one per replica: p50 is their request-weighted mean, p99 the worse.",
    "[4] from the replicas' registry_gateway_content_cache_total{result=\"hit\"|\"miss\"}; "
    "n/a: the gateway exports no such counter. Cache-on by-tag rounds start right after every "
    "tag was pulled once through the replicas (unmeasured), as clients that keep pulling them "
    "would have; tags still expire after tag_ttl (5 s) inside a round that outlasts it.",
    "[5] the cache-off replicas' CPU per request in the by-tag c=32 Bearer row (every GET goes "
    "upstream).",
    "[6] VmHWM of replica 0 (reset before) while 2,300 distinct 32 KiB manifests are pulled "
    "through it by digest; the cache is bounded at 64 MiB (cache.manifests.max_bytes).",
    "[7] direct: a second registry on the same storage serving TLS; off/on: one gateway serving "
    "TLS each (test certificate; wrk over https). A blob over TLS takes the ordinary (not "
    "spliced) path; a 256 MiB blob is never cached, so it is measured on off only.",
]


def render_cache(rows: Sequence[CacheRow], workload: str) -> str:
    lines = ["| figure | direct | cache off | cache on | off/direct | on/direct | goal | met |",
             "|---|---:|---:|---:|---:|---:|---|---|"]
    for row in rows:
        lines.append(f"| {row.label} | {' | '.join(row.cells)} | {' | '.join(row.vs)} | "
                     f"{row.goal} | {row.met} |")
    return "\n".join([*lines, "", workload, *NOTES])
