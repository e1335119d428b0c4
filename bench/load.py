"""Request-rate and latency runs with wrk; headers and the summary go through a Lua script.

`wrk()` hammers one URL. `wrk_cycle()` cycles through a list of requests (path + headers each),
every wrk thread starting at another point of the list, so a workload of many manifests is
spread over all connections. `wrk_together()` runs several wrk processes at once (one per
gateway replica: wrk takes one host) and adds them up.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from support.procs import find_program

DONE = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RGBENCH %d %d %.0f %.0f %d %d %d %d %d\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""
SCRIPT = 'wrk.method = "GET"\n{headers}\n' + DONE
# The requests are formatted once per thread (init), so request() costs wrk a table lookup.
CYCLE = """\
local H = {{{headers}}}
local R = {{{requests}}}
local threads = 0
function setup(thread)
  thread:set("index", threads)
  threads = threads + 1
end
local formatted = {{}}
local i = 0
function init(args)
  for k, r in ipairs(R) do
    local h = {{}}
    for name, value in pairs(H[r[2]]) do h[name] = value end
    formatted[k] = wrk.format("GET", r[1], h)
  end
  i = (math.floor((index or 0) * #R / {threads}) + {offset}) % #R
end
function request()
  i = i % #formatted + 1
  return formatted[i]
end
""" + DONE


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors, timeouts and any status other than 2xx/3xx

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


@dataclass(frozen=True)
class Cycle:
    """Requests to cycle through: (path, headers) each; the host comes from the base URL."""

    base_url: str
    requests: Sequence[tuple[str, Mapping[str, str]]]
    offset: int = 0  # where the first thread starts in the list


class LoadError(RuntimeError):
    pass


def _lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _lua_table(headers: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}"
                           for k, v in headers.items()) + "}"


def _cycle_script(cycle: Cycle, threads: int) -> str:
    distinct: dict[tuple[tuple[str, str], ...], int] = {}
    rows = []
    for path, headers in cycle.requests:
        key = tuple(sorted(headers.items()))
        index = distinct.setdefault(key, len(distinct) + 1)
        rows.append(f"{{{_lua_string(path)}, {index}}}")
    tables = [_lua_table(dict(key)) for key in distinct]
    return CYCLE.format(headers=",\n".join(tables), requests=",\n".join(rows), threads=threads,
                        offset=cycle.offset)


class _Run:
    """One wrk process, started at once; `result()` waits for it."""

    def __init__(self, url: str, script: str, connections: int, seconds: float,
                 threads: int) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
            handle.write(script)
        self.script = Path(handle.name)
        self.url = url
        self.seconds = seconds
        argv = [find_program("wrk"), f"-t{threads}", f"-c{connections}",
                f"-d{max(1, round(seconds))}s", "--timeout", "10s", "-s", str(self.script), url]
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)

    def result(self) -> LoadResult:
        try:
            out, err = self.process.communicate(timeout=self.seconds + 60)
        finally:
            self.script.unlink(missing_ok=True)
        if self.process.returncode != 0:
            raise LoadError(f"wrk exited with {self.process.returncode}:\n{out}\n{err}")
        line = next((x for x in out.splitlines() if x.startswith("RGBENCH ")), None)
        if line is None:
            raise LoadError(f"wrk printed no summary:\n{out}\n{err}")
        requests, duration_us, p50, p99, *errors = (float(x) for x in line.split()[1:])
        result = LoadResult(int(requests), duration_us / 1e6, p50 / 1000, p99 / 1000,
                            int(sum(errors)))
        if result.errors:
            raise LoadError(f"{self.url}: {result.errors} of {result.requests} requests "
                            f"failed:\n{out}")
        return result

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.script.unlink(missing_ok=True)


def wrk(url: str, headers: Mapping[str, str], connections: int, seconds: float,
        threads: int | None = None) -> LoadResult:
    """Keep `connections` busy on `url` for `seconds`; every answer must be 2xx/3xx."""
    lines = "\n".join(f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items())
    threads = threads or min(2, connections)
    return _Run(url, SCRIPT.format(headers=lines), connections, seconds, threads).result()


def wrk_cycle(cycle: Cycle, connections: int, seconds: float,
              threads: int | None = None) -> LoadResult:
    """Like `wrk()`, cycling through `cycle.requests`."""
    return wrk_together([cycle], connections, seconds, threads)


def wrk_together(cycles: Sequence[Cycle], connections_each: int, seconds: float,
                 threads: int | None = None) -> LoadResult:
    """One wrk per cycle (per host), all at once; the rates add up. p50: the request-weighted
    mean of the processes' p50s; p99: the worst one (wrk's histograms cannot be merged)."""
    threads = threads or max(1, min(connections_each, 2 // len(cycles) or 1))
    runs: list[_Run] = []
    try:
        for cycle in cycles:
            runs.append(_Run(cycle.base_url + cycle.requests[0][0], _cycle_script(cycle, threads),
                             connections_each, seconds, threads))
        results = [run.result() for run in runs]
    finally:
        for run in runs:
            run.stop()
    return combine(results)


def combine(results: Sequence[LoadResult]) -> LoadResult:
    if len(results) == 1:
        return results[0]
    requests = sum(r.requests for r in results)
    rps = sum(r.rps for r in results)
    p50 = sum(r.p50_ms * r.requests for r in results) / requests if requests else 0.0
    return LoadResult(requests, requests / rps if rps else 0.0, p50,
                      max(r.p99_ms for r in results), sum(r.errors for r in results))
