"""Federation: a CI job or workload logs in at /token with the OIDC ID token its platform gave it.

The username names a `federation` entry; the password is a JWT from that entry's issuer,
verified with the issuer's keys (oidc_verify: algorithm pinned to the key, `iss`, `aud`, `exp`,
`nbf`, `iat` with 60 s leeway), then every `claims` entry must match. The caller is then
`workload:NAME`, its access tokens end with the ID token, and it gets no refresh token.

An issuer that cannot be reached while no keys of it are cached is IdentityUnavailable (503),
never a grant and never a 401. A token of one entry's issuer under another entry's name fails
that entry's issuer, audience or claims check: it is judged only against the entry it names.
"""

from __future__ import annotations

import logging

from gateway.config.identity_schema import FederationEntry
from gateway.identity.failures import AuthFailure, IdentityUnavailable
from gateway.identity.oidc_keys import IssuerUnavailable
from gateway.identity.oidc_registry import OidcRegistry
from gateway.identity.oidc_verify import TokenRejected, claims_match, verify_token
from gateway.metrics import Metrics
from gateway.policy.subject import Subject
from gateway.runtime.snapshot import Snapshot

log = logging.getLogger("registry_gateway.federation")
# What an ID token must carry; `nbf` is checked when present (GitHub and GitLab send it).
REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat", "sub")


def federation_entry(snapshot: Snapshot, name: str) -> FederationEntry | None:
    return next((e for e in snapshot.settings.federation if e.name == name), None)


class FederationLogins:
    """The PasswordBackend for `federation` entries (mounted at /token only)."""

    def __init__(self, registry: OidcRegistry, metrics: Metrics) -> None:
        self._registry = registry
        self._results = metrics.federation_logins

    def claims(self, snapshot: Snapshot, username: str, password: str) -> bool:
        return federation_entry(snapshot, username) is not None

    async def verify(self, snapshot: Snapshot, username: str,
                     password: str) -> Subject | AuthFailure:
        entry = federation_entry(snapshot, username)
        if entry is None:  # gone between claims() and now: a reload
            return AuthFailure.UNKNOWN_USER
        try:
            keys = self._registry.keys(entry.issuer, entry.ca_file)
            claims = await verify_token(password, keys, audience=entry.audience,
                                        required=REQUIRED_CLAIMS)
        except TokenRejected as exc:
            return self._refused(entry, exc.reason)
        except (IssuerUnavailable, ValueError) as exc:
            reason = exc.reason if isinstance(exc, IssuerUnavailable) else "insecure_url"
            self._results.labels("unavailable").inc()
            log.warning("federation %s: issuer %s unavailable (%s): login refused with 503",
                        entry.name, entry.issuer, reason)
            raise IdentityUnavailable("federation", reason) from None
        if not claims_match(entry.claims, claims):
            return self._refused(entry, "claims_mismatch")
        self._results.labels("success").inc()
        return Subject(entry.name, "workload", expires_at=float(claims["exp"]))

    def _refused(self, entry: FederationEntry, reason: str) -> AuthFailure:
        # The entry's name and a one-word reason; never the token or its claims.
        self._results.labels(reason).inc()
        log.info("federation %s: ID token refused (%s)", entry.name, reason)
        return AuthFailure.BAD_TOKEN
