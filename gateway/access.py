"""The access pipeline in one place: credentials -> identity -> (cached) decision per action."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.accounts import Account
from gateway.authn import AuthFailure, PasswordChecker
from gateway.authz import Action, Decision, Reason, account_gate, rule_decision
from gateway.cache import CachedDecision, DecisionCache, DecisionKey
from gateway.credentials import BasicCredentials, BearerCredentials, Credentials, NoCredentials
from gateway.metrics import Metrics
from gateway.snapshot import Snapshot
from gateway.stores import LockoutStore
from gateway.tokens import TokenAuthority, TokenError


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking. `token_access` limits a Bearer caller to what its token grants."""

    subject: str | None  # None: anonymous
    presented_credentials: bool
    token_access: Mapping[str, frozenset[Action]] | None = None

    @property
    def label(self) -> str:
        return self.subject if self.subject is not None else "anonymous"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Authentication failed; the client sees a generic answer, the reason goes to metrics."""

    reason: AuthFailure
    retry_after: int | None = None  # set while locked out


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    action: Action
    decision: Decision | None  # None: the token did not carry the action

    def describe(self) -> str:
        if self.decision is None:
            return "deny: not in the token's access"
        return self.decision.explain()


class AccessControl:
    def __init__(
        self,
        tokens: TokenAuthority,
        passwords: PasswordChecker,
        cache: DecisionCache,
        lockout: LockoutStore,
        metrics: Metrics,
        attempt_secret: bytes,
    ) -> None:
        self.tokens = tokens
        self._passwords = passwords
        self._cache = cache
        self._lockout = lockout
        self._metrics = metrics
        self._attempt_secret = attempt_secret
        # Bound once: labels() takes a lock and validates on every call, on the hot path.
        self._cache_results = {result: metrics.decision_cache.labels(result)
                               for result in ("hit", "miss", "error")}

    def _fail(self, reason: AuthFailure, retry_after: int | None = None) -> Refusal:
        self._metrics.auth_failures.labels(reason.value).inc()
        return Refusal(reason, retry_after)

    async def login(
        self, snapshot: Snapshot, username: str, password: str, client: str
    ) -> Account | Refusal:
        """Check a password, with lockout per (username, client address)."""
        key = f"{username}\x1f{client}"
        locked = await self._lockout.locked_for(key)
        if locked is not None:
            return self._fail(AuthFailure.LOCKED_OUT, locked)
        result = await self._passwords.check(
            snapshot.policy.accounts, snapshot.fingerprint, snapshot.dummy_hash, username, password
        )
        if isinstance(result, Account):
            return result
        attempt = hmac.new(self._attempt_secret, f"{key}\x1f{password}".encode(
            "utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
        if await self._lockout.record_failure(key, attempt) is not None:
            self._metrics.lockouts.inc()
        return self._fail(result)

    async def authenticate(
        self, snapshot: Snapshot, credentials: Credentials, client: str
    ) -> Caller | Refusal:
        if isinstance(credentials, NoCredentials):
            return Caller(None, presented_credentials=False)
        if isinstance(credentials, BasicCredentials):
            account = await self.login(snapshot, credentials.username, credentials.password, client)
            if isinstance(account, Refusal):
                return account
            return Caller(account.name, presented_credentials=True)
        if isinstance(credentials, BearerCredentials):
            return self.bearer(snapshot, credentials.token)
        return self._fail(AuthFailure.MALFORMED)

    def bearer(self, snapshot: Snapshot, token: str) -> Caller | Refusal:
        try:
            claims = self.tokens.verify_access(token)
        except TokenError:
            return self._fail(AuthFailure.BAD_TOKEN)
        subject = claims.subject or None
        gate = account_gate(snapshot.policy, subject, datetime.now(UTC))
        if gate is not None and not gate.allowed:
            return self._fail(_GATE_FAILURES[gate.reason])
        return Caller(subject, presented_credentials=True, token_access=claims.access)

    async def decide(
        self, snapshot: Snapshot, subject: str | None, repository: str, action: Action
    ) -> Decision:
        """The current config's answer, through the decision cache; account state is never cached."""
        gate = account_gate(snapshot.policy, subject, datetime.now(UTC))
        if gate is not None:
            return gate
        key = DecisionKey(snapshot.decision_fingerprint, subject or "", repository, action)
        lookup = await self._cache.get(key)
        cached = lookup.value
        if cached is not None and (cached.rule_index is None
                                   or cached.rule_index < len(snapshot.policy.rules)):
            self._cache_results["hit"].inc()
            rule = None if cached.rule_index is None else snapshot.policy.rules[cached.rule_index]
            return Decision(cached.allowed, Reason.RULE if rule else Reason.NO_RULE, rule)
        # A failed shared level is an error, never a verdict: the config decides.
        self._cache_results["error" if lookup.failed else "miss"].inc()
        decision = rule_decision(snapshot.policy, subject, repository, action)
        index = decision.rule.index if decision.rule is not None else None
        await self._cache.put(key, CachedDecision(decision.allowed, index))
        return decision

    async def authorize(
        self, snapshot: Snapshot, caller: Caller, repository: str, actions: Iterable[Action]
    ) -> Verdict:
        """Every action must be in the token (if any) and allowed by the current config."""
        verdict: Verdict | None = None
        for action in actions:
            if caller.token_access is not None and action not in caller.token_access.get(
                repository, frozenset()
            ):
                verdict = Verdict(False, action, None)
            else:
                decision = await self.decide(snapshot, caller.subject, repository, action)
                verdict = Verdict(decision.allowed, action, decision)
            self._metrics.decisions.labels(action, "allow" if verdict.allowed else "deny").inc()
            if not verdict.allowed:
                return verdict
        assert verdict is not None, "authorize needs at least one action"
        return verdict

    async def allowed_actions(
        self, snapshot: Snapshot, subject: str | None, repository: str, actions: Iterable[Action]
    ) -> frozenset[Action]:
        allowed = set()
        for action in actions:
            decision = await self.decide(snapshot, subject, repository, action)
            self._metrics.decisions.labels(action, "allow" if decision.allowed else "deny").inc()
            if decision.allowed:
                allowed.add(action)
        return frozenset(allowed)


_GATE_FAILURES = {
    Reason.DISABLED: AuthFailure.DISABLED,
    Reason.EXPIRED: AuthFailure.EXPIRED,
    Reason.UNKNOWN_ACCOUNT: AuthFailure.UNKNOWN_USER,
}
