"""After pushes, pulls, a delete, denials and failed logins: metrics, audit trail and Prometheus."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from support import wait_until
from support.prometheus import Prometheus
from support.scenario import LAYER, PUBLIC_MISSING, REPOSITORY, Scenario, samples, value

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "config" / "grafana" / "registry-gateway.json"
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
ACCESS_FIELDS = {"time", "event", "request_id", "client", "user", "repository", "action", "result",
                 "rule_index", "rule_comment", "status", "bytes", "duration_ms"}
PEOPLE = ("alice", "bob", "carol", "dave", "eve", "mallory")


def test_promtool_accepts_the_metrics(scenario: Scenario) -> None:
    result = subprocess.run(["promtool", "check", "metrics"], input=scenario.metrics_text(),
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_counters_moved_as_expected(scenario: Scenario) -> None:
    text = scenario.metrics_text()
    requests = "registry_gateway_requests_total"
    assert value(text, requests, method="POST", route="uploads", status="202") == 2
    assert value(text, requests, method="PUT", route="uploads", status="201") == 2
    assert value(text, requests, method="PUT", route="manifests", status="201") == 1
    assert value(text, requests, method="GET", route="manifests", status="200") == 1
    assert value(text, requests, method="GET", route="blobs", status="200") == 2
    assert value(text, requests, method="DELETE", route="manifests", status="202") == 1
    assert value(text, requests, method="GET", route="manifests", status="404") == 1
    assert value(text, requests, method="GET", route="token", status="200") == 3
    assert value(text, requests, method="GET", route="token", status="429") == 1
    assert value(text, requests, method="GET", route="token", status="401") == 7
    assert value(text, requests, method="POST", route="token", status="401") == 1
    assert value(text, "registry_gateway_request_duration_seconds_count", route="blobs") == 2

    failures = "registry_gateway_auth_failures_total"
    assert value(text, failures, reason="bad_password") == 1
    assert value(text, failures, reason="unknown_user") == 4  # mallory, and eve three times
    assert value(text, failures, reason="disabled") == 1
    assert value(text, failures, reason="expired") == 1
    assert value(text, failures, reason="bad_token") == 2
    assert value(text, failures, reason="locked_out") == 1
    assert value(text, "registry_gateway_lockouts_total") == 1
    assert value(text, "registry_gateway_tokens_issued_total", kind="access") == 3

    decisions = "registry_gateway_authz_decisions_total"
    assert value(text, decisions, action="push", result="allow") >= 5
    assert value(text, decisions, action="delete", result="allow") >= 2
    assert value(text, decisions, action="pull", result="deny") >= 3  # anonymous, bob twice
    assert value(text, decisions, action="push", result="deny") >= 1  # bob's token request
    assert value(text, "registry_gateway_decision_cache_total", result="hit") > 0

    assert value(text, "registry_gateway_proxied_bytes_total", direction="upload") >= len(LAYER)
    assert value(text, "registry_gateway_proxied_bytes_total",
                 direction="download") >= scenario.pulled_bytes
    for kind in ("connect", "timeout", "protocol", "status"):
        assert value(text, "registry_gateway_upstream_errors_total", kind=kind) == 0
    assert value(text, "registry_gateway_upstream_up") == 1
    assert value(text, "registry_gateway_config_last_reload_successful") == 1
    assert value(text, "registry_gateway_requests_in_flight") == 1  # this scrape itself

    # ci-bot expires in 2099, old-bot expired in 2020: counted, never named on /metrics.
    expiring = "registry_gateway_service_accounts_expiring"
    assert value(text, expiring, within="7d") == value(text, expiring, within="30d") == 0
    assert value(text, "registry_gateway_service_accounts_expired") == 1
    assert "ci-bot" not in text and "old-bot" not in text and "account=" not in text
    info = [labels for (name, labels) in samples(text) if name == "registry_gateway_config_info"]
    assert len(info) == 1 and re.fullmatch(r"[0-9a-f]{16}", dict(info[0])["fingerprint"])


def test_no_repository_user_or_secret_in_metrics(scenario: Scenario) -> None:
    text = scenario.metrics_text()
    label_values = {v for (_, labels) in samples(text) for _, v in labels}
    for forbidden in (REPOSITORY, PUBLIC_MISSING, "myteam", "library", *PEOPLE):
        assert not any(forbidden in v for v in label_values), forbidden
    for secret in scenario.secrets:
        assert secret not in text
    assert not JWT.search(text)


def test_no_secret_in_audit_or_log(scenario: Scenario) -> None:
    for path in (scenario.audit_path, scenario.gateway.log_path):
        text = path.read_text()
        for secret in scenario.secrets:
            assert secret not in text, (path.name, secret[:12])
        assert not JWT.search(text), path.name
        for header in ("Authorization", "Bearer ", "Basic ", "Cookie"):
            assert header not in text, (path.name, header)


def test_audit_trail_has_every_field(scenario: Scenario) -> None:
    lines = scenario.audit_lines()
    access = [a for a in lines if a["event"] == "access"]
    assert access
    for line in access:
        assert line.keys() >= ACCESS_FIELDS, ACCESS_FIELDS - line.keys()
        assert line["client"] == "127.0.0.1"
        assert re.fullmatch(r"[0-9a-f]{16}", line["request_id"])
    put = next(a for a in access if a["method"] == "PUT" and a["route"] == "manifests"
               and a["user"] == "alice")
    assert put["repository"] == REPOSITORY and put["action"] == "push"
    assert (put["result"], put["status"], put["rule_index"]) == ("allow", 201, 0)
    assert put["rule_comment"] == "the team's own images" and put["bytes"] > 0
    denied = [a for a in access if a["result"] == "deny"]
    assert {(a["user"], a["action"], a["status"]) for a in denied} >= {
        ("anonymous", "pull", 401), ("bob", "pull", 401)}

    completed = {(a["event"], a["user"], a["repository"]) for a in lines
                 if a["event"] in ("push", "pull", "delete")}
    assert completed == {(e, "alice", REPOSITORY) for e in ("push", "pull", "delete")}
    blob_bytes = sum(a["bytes"] for a in access if a["route"] == "blobs" and a["status"] == 200)
    assert blob_bytes >= len(LAYER)

    logins = {(a["user"], a["reason"], a["status"], a["route"]) for a in lines
              if a["event"] == "login"}
    assert logins == {
        ("alice", "bad_password", 401, "token"),
        ("mallory", "unknown_user", 401, "token"),
        ("dave", "disabled", 401, "token"),
        ("old-bot", "expired", 401, "token"),
        ("anonymous", "bad_token", 401, "v2"),
        ("anonymous", "bad_token", 401, "token"),
        ("eve", "unknown_user", 401, "token"),
        ("eve", "locked_out", 429, "token"),
    }


def _gateway_total(scenario: Scenario) -> float:
    """Requests the scenario made (every route but `other`, where the scrapes themselves count)."""
    return sum(v for (name, labels), v in samples(scenario.metrics_text()).items()
               if name == "registry_gateway_requests_total" and ("route", "other") not in labels)


def test_prometheus_scrapes_the_gateway(scenario: Scenario, prometheus: Prometheus) -> None:
    expected = _gateway_total(scenario)
    assert expected > 20
    wanted = {
        'sum(registry_gateway_requests_total{job="registry-gateway", route!="other"})': expected,
        'up{job="registry-gateway"}': 1,
        'registry_gateway_requests_total{route="manifests", method="PUT", status="201"}': 1,
        "registry_gateway_lockouts_total": 1,
        "registry_gateway_upstream_up": 1,
    }
    seen: dict[str, float | None] = {}

    def caught_up() -> bool:
        # One query at a time may fall between a slow scrape and the next one: retry the set.
        seen.update({expr: prometheus.scalar(expr) for expr in wanted})
        return seen == wanted

    try:
        wait_until(caught_up, timeout=30, what="Prometheus to catch up")
    except TimeoutError as exc:
        raise AssertionError(f"wanted {wanted}, Prometheus says {seen}") from exc


def test_prometheus_loads_and_fires_the_alert_rules(
    scenario: Scenario, prometheus: Prometheus
) -> None:
    groups = prometheus.api("rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == 11

    def firing() -> set[tuple[str, str]]:
        alerts = prometheus.api("alerts")["alerts"]
        return {(a["labels"]["alertname"], a["labels"].get("account", "")) for a in alerts
                if a["state"] == "firing"}

    # No `for:` on these two: the expired test account and the lockout the scenario caused.
    wanted = {("RegistryGatewayServiceAccountExpired", ""), ("RegistryGatewayLockouts", "")}
    wait_until(lambda: wanted <= firing(), timeout=30, what=f"alerts {wanted} to fire")
    assert not {name for name, _ in firing()} & {
        "RegistryGatewayDown", "RegistryGatewayUpstreamDown", "RegistryGatewayUpstreamErrors",
        "RegistryGatewayConfigReloadFailed", "RegistryGatewayServiceAccountExpiringSoon"}
    broken = [(r["name"], r.get("lastError")) for r in rules if r["health"] == "err"]
    assert not broken


def _dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"]
            for target in panel.get("targets", [])]


# Series that the scenario does not create: no Redis here, so no fallback.
MAY_BE_EMPTY = ("Shared state served in-process (Redis failing)",)


def test_dashboard_queries_run_on_prometheus(scenario: Scenario, prometheus: Prometheus) -> None:
    queries = _dashboard_queries()
    assert len(queries) >= 20
    empty: list[str] = []

    def all_answer() -> bool:
        empty.clear()
        for title, expr in queries:
            concrete = (expr.replace("$__rate_interval", "1m").replace("$instance", ".*")
                        .replace("$job", "registry-gateway"))
            # An invalid query fails here: the API answers 400 and api() raises.
            if not prometheus.query(concrete) and title not in MAY_BE_EMPTY:
                empty.append(title)
        return not empty

    try:
        wait_until(all_answer, timeout=30, interval=1, what="data for every panel")
    except TimeoutError as exc:
        raise AssertionError(f"panels without data: {empty}") from exc


@pytest.mark.parametrize("path", ["alerts.yml"])
def test_promtool_accepts_the_rules(path: str) -> None:
    rules_dir = ROOT / "config" / "prometheus"
    check = subprocess.run(["promtool", "check", "rules", str(rules_dir / path)],
                           capture_output=True, text=True, timeout=60, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    unit = subprocess.run(["promtool", "test", "rules", "alerts_test.yml"], cwd=rules_dir,
                          capture_output=True, text=True, timeout=60, check=False)
    assert unit.returncode == 0, unit.stdout + unit.stderr
