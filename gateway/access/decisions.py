"""The one door to a decision: the current config's answer per action, through the cache.

/v2/, /token, the catalog, the pages and explain all ask here. A token that lacks an action
still gets the config's answer recorded, so the audit can name the rule either way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.access.request import Caller
from gateway.metrics import Metrics
from gateway.policy.actions import Action
from gateway.policy.decide import Decision, Reason, account_gate, rule_decision
from gateway.policy.rules import Rule
from gateway.policy.subject import Subject
from gateway.runtime.snapshot import Snapshot
from gateway.state.decisions import CachedDecision, DecisionCache, DecisionKey


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    decision: Decision  # what the current config says
    in_token: bool = True  # False: a Bearer token that does not carry the action

    @property
    def allowed(self) -> bool:
        return self.in_token and self.decision.allowed

    @property
    def rule(self) -> Rule | None:
        return self.decision.rule

    def describe(self) -> str:
        if not self.in_token:
            return f"deny: not in the token's access (the config says {self.decision.explain()})"
        return self.decision.explain()


class Verdicts(tuple[Verdict, ...]):
    """One verdict per asked action, in the order asked."""

    @property
    def allowed(self) -> bool:
        return all(v.allowed for v in self)

    @property
    def granted(self) -> frozenset[Action]:
        return frozenset(v.action for v in self if v.allowed)

    def deciding(self) -> Verdict:
        """The first denial, else the last verdict: the one an audit line reports."""
        return next((v for v in self if not v.allowed), self[-1])


class Decider:
    def __init__(self, cache: DecisionCache, metrics: Metrics) -> None:
        self._cache = cache
        self._metrics = metrics
        # Bound once: labels() takes a lock and validates on every call, on the hot path.
        self._cache_results = {result: metrics.decision_cache.labels(result)
                               for result in ("hit", "miss", "error")}

    async def decide(self, snapshot: Snapshot, caller: Caller | Subject | None, repository: str,
                     actions: Iterable[Action], *, cached: bool = True,
                     count: bool = True) -> Verdicts:
        """Every action of `actions` for `caller`. `cached=False` and `count=False` for bulk
        questions (a catalog page looks at thousands of names and must not evict the cache)."""
        if isinstance(caller, Caller):
            subject, token = caller.subject, caller.token_access
        else:
            subject, token = caller, None
        verdicts = []
        for action in actions:
            if cached:
                decision = await self._cached(snapshot, subject, repository, action)
            else:
                decision = (account_gate(snapshot.policy, subject, datetime.now(UTC))
                            or rule_decision(snapshot.policy, subject, repository, action))
            in_token = token is None or action in token.get(repository, frozenset())
            verdict = Verdict(action, decision, in_token)
            if count:
                self._metrics.decisions.labels(action, "allow" if verdict.allowed else "deny").inc()
            verdicts.append(verdict)
        return Verdicts(verdicts)

    async def _cached(self, snapshot: Snapshot, subject: Subject | None, repository: str,
                      action: Action) -> Decision:
        """Account state is never cached; the rules' answer is, keyed by the config fingerprint."""
        gate = account_gate(snapshot.policy, subject, datetime.now(UTC))
        if gate is not None:
            return gate
        settings = snapshot.settings.cache
        key = DecisionKey(snapshot.decision_fingerprint,
                          subject.cache_key() if subject is not None else "", repository, action)
        lookup = await self._cache.get(key, settings)
        cached = lookup.value
        rules = snapshot.policy.rules
        if cached is not None and (cached.rule_index is None or cached.rule_index < len(rules)):
            self._cache_results["hit"].inc()
            rule = None if cached.rule_index is None else rules[cached.rule_index]
            return Decision(cached.allowed, Reason.RULE if rule else Reason.NO_RULE, rule)
        # A failed shared level is an error, never a verdict: the config decides.
        self._cache_results["error" if lookup.failed else "miss"].inc()
        decision = rule_decision(snapshot.policy, subject, repository, action)
        index = decision.rule.index if decision.rule is not None else None
        await self._cache.put(key, CachedDecision(decision.allowed, index), settings)
        return decision
