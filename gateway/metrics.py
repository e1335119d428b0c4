"""Prometheus metrics on the gateway's own registry; labels stay low-cardinality.

No label ever holds a repository, user, account, token, path or client address.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

from gateway import __version__
from gateway.policy.actions import ACTIONS

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# From a sub-millisecond cached decision to a half-hour blob transfer on a slow link.
DURATION_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
)
PREFIX = "registry_gateway"
TOKEN_KINDS = ("access", "refresh")
UPSTREAM_ERROR_KINDS = ("connect", "timeout", "protocol", "status")
EXPIRY_WINDOWS = {"7d": 7 * 86400, "30d": 30 * 86400}


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._request_families(r)
        self._state_families(r)
        self._expiries: tuple[float, ...] = ()
        self._initialize_series()

    def _request_families(self, r: CollectorRegistry) -> None:
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

    def _state_families(self, r: CollectorRegistry) -> None:
        self.upstream_up = Gauge(
            f"{PREFIX}_upstream_up", "1 if the upstream registry answered the last probe "
            "(taken on every scrape and /readyz)", registry=r)
        self.bytes = Counter(
            f"{PREFIX}_proxied_bytes", "Body bytes proxied", ["direction"], registry=r)
        self.reloads = Counter(
            f"{PREFIX}_config_reloads", "Config reloads", ["result"], registry=r)
        self.last_reload_ok = Gauge(
            f"{PREFIX}_config_last_reload_successful",
            "1 if the last reload was applied, 0 if it was refused (the old config serves)",
            registry=r)
        self.last_reload = Gauge(
            f"{PREFIX}_config_last_reload_success_timestamp_seconds",
            "When the running config was loaded", registry=r)
        self.config_info = Gauge(
            f"{PREFIX}_config_info", "The running config's fingerprint", ["fingerprint"],
            registry=r)
        # Counts, never names: /metrics is often reachable by more people than the config.
        self.accounts_expiring = Gauge(
            f"{PREFIX}_service_accounts_expiring", "Active service accounts that expire within "
            "the window (names: the log at load, /ui/access)", ["within"], registry=r)
        self.accounts_expired = Gauge(
            f"{PREFIX}_service_accounts_expired", "Service accounts past their expiry",
            registry=r)
        self.lockouts = Counter(
            f"{PREFIX}_lockouts", "Lockouts started", registry=r)
        self.redis_fallbacks = Counter(
            f"{PREFIX}_state_fallbacks", "Shared-state operations served in-process "
            "because Redis failed", ["store"], registry=r)
        self.spliced = Counter(
            f"{PREFIX}_spliced_responses", "Blob responses whose body the kernel moved "
            "socket to socket (splice)", registry=r)
        self.connections_refused = Counter(
            f"{PREFIX}_connections_refused", "Connections cut off before a request was "
            "answered", ["reason"], registry=r)
        self.build_info = Gauge(
            f"{PREFIX}_build_info", "The running gateway's version", ["version"], registry=r)

    def _initialize_series(self) -> None:
        # Known label values start at 0, so rate() and alerts see a series before its first event.
        for result in ("hit", "miss", "error"):
            self.decision_cache.labels(result)
        for result in ("success", "error"):
            self.reloads.labels(result)
        for direction in ("upload", "download"):
            self.bytes.labels(direction)
        for kind in UPSTREAM_ERROR_KINDS:
            self.upstream_errors.labels(kind)
        for kind in TOKEN_KINDS:
            self.tokens_issued.labels(kind)
        for reason in ("over_cap", "header_timeout"):
            self.connections_refused.labels(reason)
        for action in ACTIONS:
            for result in ("allow", "deny"):
                self.decisions.labels(action, result)
        self.last_reload_ok.set(1)
        self.build_info.labels(__version__).set(1)

    def observe_config(self, fingerprint: str, loaded_at: float,
                       expiries: Iterable[datetime]) -> None:
        self.config_info.clear()
        self.config_info.labels(fingerprint).set(1)
        self.last_reload.set(loaded_at)
        self._expiries = tuple(sorted(e.timestamp() for e in expiries))

    def observe_expiries(self, now: float) -> None:
        """Expiry counts as of `now` (called at scrape time: they change with the clock)."""
        for label, seconds in EXPIRY_WINDOWS.items():
            self.accounts_expiring.labels(label).set(
                sum(1 for e in self._expiries if now < e <= now + seconds))
        self.accounts_expired.set(sum(1 for e in self._expiries if e <= now))

    def observe_reload(self, ok: bool) -> None:
        self.reloads.labels("success" if ok else "error").inc()
        self.last_reload_ok.set(1 if ok else 0)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition in the format the scraper asks for (OpenMetrics or text 0.0.4)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else "other"
