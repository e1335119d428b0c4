"""A real Prometheus (Debian's `prometheus`) scraping the gateway every second, and its HTTP API."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from support.procs import ManagedProcess, find_program, start_on_free_port

ALERTS = Path(__file__).resolve().parents[2] / "config" / "prometheus" / "alerts.yml"


@dataclass
class Prometheus:
    process: ManagedProcess
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("query", query=expr)["result"]
        return result

    def scalar(self, expr: str) -> float | None:
        """The value of a query with at most one series; None when it has none."""
        result = self.query(expr)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        self.process.stop()


def start_prometheus(workdir: Path, target: str, metrics_path: str = "/metrics") -> Prometheus:
    """Scrape `target` (host:port) as job `registry-gateway` every second, with our alert rules."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [{
            "job_name": "registry-gateway",
            "metrics_path": metrics_path,
            "static_configs": [{"targets": [target]}],
        }],
    }
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))

    def start(port: int) -> Prometheus:
        process = ManagedProcess(
            "prometheus",
            [find_program("prometheus"), f"--config.file={config_path}",
             f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            log_path=workdir / "prometheus.log",
            cwd=workdir,
        )
        process.start()
        prometheus = Prometheus(process, port)
        process.wait_ready(lambda: _ready(prometheus), timeout=30)
        return prometheus

    return start_on_free_port(start)


def _ready(prometheus: Prometheus) -> bool:
    with urllib.request.urlopen(f"{prometheus.url}/-/ready", timeout=1) as response:
        return bool(response.status == 200)
