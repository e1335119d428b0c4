"""Prometheus metrics on the gateway's own registry; labels stay low-cardinality."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# From a millisecond manifest GET to a many-minute blob transfer.
DURATION_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
)
PREFIX = "registry_gateway"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            f"{PREFIX}_requests", "HTTP requests answered", ["method", "route", "status"],
            registry=r)
        self.duration = Histogram(
            f"{PREFIX}_request_duration_seconds", "Time to answer a request, body included",
            ["route"], buckets=DURATION_BUCKETS, registry=r)
        self.in_flight = Gauge(
            f"{PREFIX}_requests_in_flight", "Requests being answered now", registry=r)
        self.decisions = Counter(
            f"{PREFIX}_authz_decisions", "Access decisions", ["action", "result"], registry=r)
        self.decision_cache = Counter(
            f"{PREFIX}_decision_cache", "Decision cache lookups", ["result"], registry=r)
        self.tokens_issued = Counter(
            f"{PREFIX}_tokens_issued", "Tokens issued by /token", ["kind"], registry=r)
        self.auth_failures = Counter(
            f"{PREFIX}_auth_failures", "Failed authentications", ["reason"], registry=r)
        self.upstream_errors = Counter(
            f"{PREFIX}_upstream_errors", "Upstream registry failures", ["kind"], registry=r)
        self.bytes = Counter(
            f"{PREFIX}_proxied_bytes", "Body bytes proxied", ["direction"], registry=r)
        self.reloads = Counter(
            f"{PREFIX}_config_reloads", "Config reloads", ["result"], registry=r)
        self.last_reload = Gauge(
            f"{PREFIX}_config_last_reload_success_timestamp_seconds",
            "When the running config was loaded", registry=r)
        self.config_info = Gauge(
            f"{PREFIX}_config_info", "The running config's fingerprint", ["fingerprint"],
            registry=r)
        self.account_expiry = Gauge(
            f"{PREFIX}_service_account_expiry_timestamp_seconds",
            "When each service account expires", ["account"], registry=r)
        self.lockouts = Counter(
            f"{PREFIX}_lockouts", "Lockouts started", registry=r)
        self.redis_fallbacks = Counter(
            f"{PREFIX}_state_fallbacks", "Shared-state operations served in-process "
            "because Redis failed", ["store"], registry=r)
        for result in ("hit", "miss", "error"):
            self.decision_cache.labels(result)
        for result in ("success", "error"):
            self.reloads.labels(result)
        for direction in ("upload", "download"):
            self.bytes.labels(direction)
        self.upstream_errors.labels("connect")

    def observe_config(self, fingerprint: str, loaded_at: float,
                       expiries: Mapping[str, datetime | None]) -> None:
        self.config_info.clear()
        self.config_info.labels(fingerprint).set(1)
        self.last_reload.set(loaded_at)
        self.account_expiry.clear()
        for account, expires in expiries.items():
            if expires is not None:
                self.account_expiry.labels(account).set(expires.timestamp())

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else "other"
