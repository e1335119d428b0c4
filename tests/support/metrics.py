"""Read one sample from a gateway's /metrics (Prometheus text format)."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def metric_value(base_url: str, name: str, labels: dict[str, str] | None = None) -> float:
    """The value of sample `name` with exactly these labels (0.0 when it is not there)."""
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    wanted = labels or {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == wanted:
                return float(sample.value)
    return 0.0
