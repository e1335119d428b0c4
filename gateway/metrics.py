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
# Label sets of requests_total remembered; an unknown method is "other" but keyed as sent.
MAX_REQUEST_CHILDREN = 4096
CONTENT_CACHE_RESULTS = ("hit", "miss", "error", "bypass")
EXPIRY_WINDOWS = {"7d": 7 * 86400, "30d": 30 * 86400}
# Why a federation login (an ID token at /token) or an SSO sign-in ended as it did.
FEDERATION_RESULTS = ("success", "expired", "audience", "issuer", "signature", "algorithm",
                      "unknown_key", "claims", "malformed", "claims_mismatch", "unavailable")
SSO_RESULTS = ("success", "expired", "state", "denied", "issuer", "code", "provider",
               "token_endpoint", "id_token", "nonce", "unavailable", "bad_name", "name_taken",
               "name_contested", "disabled")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        r = self.registry
        self._request_families(r)
        self._state_families(r)
        self._identity_families(r)
        self._content_families(r)
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
        self.htpasswd_refused = Gauge(
            f"{PREFIX}_htpasswd_lines_refused", "htpasswd lines of the running config whose "
            "hash is not bcrypt: their users cannot log in (which lines: the log)", registry=r)
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

    def _content_families(self, r: CollectorRegistry) -> None:
        self.content_cache = Counter(
            f"{PREFIX}_content_cache", "Manifest and small-blob reads by the content cache "
            "(bypass: not answerable from it, e.g. an Accept it cannot match)", ["result"],
            registry=r)
        self.content_invalidations = Counter(
            f"{PREFIX}_content_cache_invalidations", "Manifest PUTs and DELETEs, blob DELETEs "
            "that made a repository's cached content stale on every replica", registry=r)
        self.content_bytes = Gauge(
            f"{PREFIX}_content_cache_bytes", "Bytes the in-process content cache holds",
            registry=r)
        for result in CONTENT_CACHE_RESULTS:
            self.content_cache.labels(result)

    def _identity_families(self, r: CollectorRegistry) -> None:
        self.federation_logins = Counter(
            f"{PREFIX}_federation_logins", "Logins with a workload's OIDC ID token",
            ["result"], registry=r)
        self.sso_logins = Counter(
            f"{PREFIX}_sso_logins", "Single sign-on sign-ins to the web pages", ["result"],
            registry=r)
        self.directory_requests = Counter(
            f"{PREFIX}_directory_requests", "Directory (LDAP) operations by result",
            ["operation", "result"], registry=r)

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
        for result in FEDERATION_RESULTS:
            self.federation_logins.labels(result)
        for result in SSO_RESULTS:
            self.sso_logins.labels(result)
        for operation in ("search", "bind", "groups"):
            for result in ("ok", "error", "timeout"):
                self.directory_requests.labels(operation, result)
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

    def count_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """requests_total and request_duration_seconds, the label children looked up once per
        label set (prometheus_client's labels() costs a lock and a tuple per call)."""
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            children = (self.requests.labels(method_label(method), route, str(status)),
                        self.duration.labels(route))
            if len(self._request_children) < MAX_REQUEST_CHILDREN:
                self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_reload(self, ok: bool) -> None:
        self.reloads.labels("success" if ok else "error").inc()
        self.last_reload_ok.set(1 if ok else 0)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition in the format the scraper asks for (OpenMetrics or text 0.0.4)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else "other"
