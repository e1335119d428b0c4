"""Request-rate and latency runs with wrk; headers and the summary go through a Lua script."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from support.procs import find_program

SCRIPT = """\
wrk.method = "GET"
{headers}
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RGBENCH %d %d %.0f %.0f %d %d %d %d %d\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


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


class LoadError(RuntimeError):
    pass


def _lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def wrk(url: str, headers: Mapping[str, str], connections: int, seconds: float,
        threads: int | None = None) -> LoadResult:
    """Keep `connections` busy on `url` for `seconds`; every answer must be 2xx/3xx."""
    lines = "\n".join(f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items())
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(SCRIPT.format(headers=lines))
    try:
        threads = threads or min(2, connections)
        argv = [find_program("wrk"), f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
                "--timeout", "10s", "-s", script.name, url]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60,
                             check=True).stdout
    finally:
        Path(script.name).unlink()
    line = next((x for x in out.splitlines() if x.startswith("RGBENCH ")), None)
    if line is None:
        raise LoadError(f"wrk printed no summary:\n{out}")
    requests, duration_us, p50, p99, *errors = (float(x) for x in line.split()[1:])
    result = LoadResult(int(requests), duration_us / 1e6, p50 / 1000, p99 / 1000, int(sum(errors)))
    if result.errors:
        raise LoadError(f"{url}: {result.errors} of {result.requests} requests failed:\n{out}")
    return result
