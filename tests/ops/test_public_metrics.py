"""Issue 11, defect 6: what anyone who can reach the port learns from /metrics and banners.

- /metrics on the main listener (unauthenticated) names no account: the expiry alert works from
  counts of service accounts expiring within 7 and 30 days; the names are in the log (and on
  /ui/access), not in a label.
- No answer says which software and versions serve it: no `Server:` header with a version (or
  naming Python/aiohttp) on any kind of answer, the gateway's own, the upstream's relayed ones,
  aiohttp's own 404/405 and its parser's 400s, and the metrics listener's.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import Upstream, free_port
from support.gateway import RunningGateway, base_config, password_hash, running_gateway
from support.regclient import RegistryClient
from support.wire import Answer, exchange, request

SOON, MONTH = "soon-bot", "month-bot"  # expiring in 3 and in 20 days


def expiring_config(upstream_url: str, port: int, **server: Any) -> dict[str, Any]:
    config = base_config(upstream_url, port)
    config["server"].update(server)
    now = datetime.now(UTC)
    for name, days in ((SOON, 3), (MONTH, 20)):
        config["service_accounts"][name] = {
            "password_hash": password_hash(f"{name}-secret"),
            "expires": (now + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    return config


@pytest.fixture(scope="module")
def main_only(registry_upstream_session: Upstream,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    port, directory = free_port(), tmp_path_factory.mktemp("public-metrics")
    with running_gateway(expiring_config(registry_upstream_session.url, port), directory,
                         port) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def with_metrics_listener(registry_upstream_session: Upstream,
                          tmp_path_factory: pytest.TempPathFactory
                          ) -> Iterator[tuple[RunningGateway, int]]:
    port, metrics_port = free_port(), free_port()
    directory = tmp_path_factory.mktemp("metrics-listener")
    config = expiring_config(registry_upstream_session.url, port,
                             metrics_listen=f"127.0.0.1:{metrics_port}")
    with running_gateway(config, directory, port) as gateway:
        yield gateway, metrics_port


def scrape(port: int) -> str:
    answer = RegistryClient(port).request("GET", "/metrics")
    assert answer.status == 200, answer
    return answer.body.decode()


ACCOUNTS = ("ci-bot", "old-bot", SOON, MONTH)


def test_the_public_metrics_name_no_account(main_only: RunningGateway) -> None:
    text = scrape(main_only.port)
    assert not [name for name in ACCOUNTS if name in text]


def _days(labels: dict[str, str]) -> int | None:
    for value in labels.values():
        match = re.fullmatch(r"(\d+)(d|days?)?", value)
        if match:
            number = int(match.group(1))
            return number // 86400 if number >= 86400 else number
    return None


def test_the_expiry_alert_has_counts_within_7_and_30_days(main_only: RunningGateway) -> None:
    counts: dict[int, float] = {}
    for family in text_string_to_metric_families(scrape(main_only.port)):
        if "expir" not in family.name:
            continue
        for sample in family.samples:
            days = _days(sample.labels)
            if days is not None:
                counts[days] = sample.value
    # Within 7 days: soon-bot; within 30: soon-bot and month-bot (expired old-bot is no longer
    # "expiring", ci-bot is years away).
    assert counts.get(7) == 1 and counts.get(30) == 2, counts


def test_the_log_names_the_accounts_about_to_expire(main_only: RunningGateway) -> None:
    lines = [line for line in main_only.log_text().splitlines() if "expir" in line.lower()]
    assert any(SOON in line for line in lines), lines
    assert any(MONTH in line for line in lines), lines


def answers_of_every_kind(port: int) -> dict[str, bytes]:
    return {
        "gateway JSON (/v2/ challenge)": request("GET", "/v2/"),
        "token": request("GET", "/token?service=gateway.test"),
        "relayed from the upstream": request("GET", "/v2/library/nothing-here/tags/list"),
        "healthz": request("GET", "/healthz"),
        "ui page": request("GET", "/ui/login"),
        "ui static file": request("GET", "/ui/static/style.css"),
        "aiohttp 404": request("GET", "/no/such/page"),
        "aiohttp 405": request("PUT", "/healthz", length=True),
        "parser 400: bad request line": b"GET /v2/ HTTQ/1.1\r\nHost: x\r\n\r\n",
        "parser 400: oversized header": request("GET", "/v2/", [("X-Big", "a" * 9000)]),
        "parser 400: bad header": b"GET /v2/ HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n",
    }


BANNER = re.compile(r"\d|python|aiohttp", re.IGNORECASE)
KINDS = ["gateway JSON (/v2/ challenge)", "token", "relayed from the upstream", "healthz",
         "ui page", "ui static file", "aiohttp 404", "aiohttp 405",
         "parser 400: bad request line", "parser 400: oversized header", "parser 400: bad header"]


def assert_no_banner(answer: Answer | None) -> None:
    assert answer is not None
    for value in answer.all("Server"):
        assert not BANNER.search(value), f"Server: {value}"
    for name in ("X-Powered-By", "Via"):
        assert not any(BANNER.search(v) for v in answer.all(name)), answer


@pytest.mark.parametrize("kind", [pytest.param(k)
                                  for k in KINDS])
def test_no_answer_names_the_server_software(main_only: RunningGateway, kind: str) -> None:
    data = answers_of_every_kind(main_only.port)[kind]
    assert_no_banner(asyncio.run(exchange(main_only.port, data)))


@pytest.mark.parametrize("path", ["/metrics", "/nothing"])
def test_the_metrics_listener_names_no_software_either(
        with_metrics_listener: tuple[RunningGateway, int], path: str) -> None:
    _, metrics_port = with_metrics_listener
    assert_no_banner(asyncio.run(exchange(metrics_port, request("GET", path))))
    if path == "/metrics":  # names stay off the separate listener too
        assert not [name for name in ACCOUNTS if name in scrape(metrics_port)]


def test_the_version_stays_in_build_info(main_only: RunningGateway) -> None:
    """Operators still see it, in a metric (passes today)."""
    assert "registry_gateway_build_info{" in scrape(main_only.port)
