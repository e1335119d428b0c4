"""The gateway's access service built in-process, wired as `gateway.app._services` wires it, for
unit tests and benchmarks that call it directly with a decision cache and checker of their own."""

from __future__ import annotations

from gateway.access.decisions import Decider
from gateway.access.request import RequestScope
from gateway.access.service import AccessService
from gateway.audit import AuditLog
from gateway.identity.backends import IdentityBackends, LocalAccounts
from gateway.identity.passwords import CredentialCache, PasswordChecker
from gateway.keys import SigningKey
from gateway.metrics import Metrics
from gateway.policy.names import RouteName
from gateway.runtime.snapshot import Snapshot
from gateway.state.decisions import DecisionCache, MemoryDecisionCache
from gateway.state.lockout import LockoutStore, MemoryLockoutStore
from gateway.tokens import TokenAuthority


def access_service(
    decisions: DecisionCache | None = None,
    passwords: PasswordChecker | None = None,
    *,
    lockout: LockoutStore | None = None,
    metrics: Metrics | None = None,
    audit: AuditLog | None = None,
) -> AccessService:
    """An AccessService over local accounts; refusals go to `audit` (default: stderr, which
    pytest captures; a caller that passes a file's AuditLog closes it)."""
    # `is None`, not `or`: an empty MemoryDecisionCache (it has a length) is falsy.
    metrics = Metrics() if metrics is None else metrics
    decisions = MemoryDecisionCache(1000) if decisions is None else decisions
    lockout = MemoryLockoutStore() if lockout is None else lockout
    key = SigningKey.generate()
    passwords = passwords or PasswordChecker(CredentialCache(60))
    return AccessService(
        TokenAuthority(key, "gateway.test", "registry-gateway-test", 300, 3600),
        IdentityBackends(LocalAccounts(passwords)),
        Decider(decisions, metrics),
        lockout,
        metrics,
        AuditLog(None) if audit is None else audit,
        key.secret(b"registry-gateway lockout attempt"),
    )


def request_scope(snapshot: Snapshot, client: str = "127.0.0.1", route: RouteName = "base",
                  passwords_allowed: bool = True, request_id: str = "test-request") -> RequestScope:
    """What the outermost middleware builds for one request."""
    return RequestScope(request_id, snapshot, client, passwords_allowed, route)
