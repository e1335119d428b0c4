"""The access decision: a pure function of (policy, account, repository, action), no I/O."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Literal

from gateway.accounts import Account, AccountState
from gateway.config import RuleSpec
from gateway.globs import glob_regex, is_literal

Action = Literal["pull", "push", "delete"]
ACTIONS: tuple[Action, ...] = ("pull", "push", "delete")


class Reason(Enum):
    RULE = "rule"
    NO_RULE = "no rule matched"
    ADMIN = "admin"
    DISABLED = "disabled"
    EXPIRED = "expired"
    UNKNOWN_ACCOUNT = "unknown account"


@dataclass(frozen=True, slots=True)
class Principals:
    users: frozenset[str] = frozenset()
    teams: frozenset[str] = frozenset()
    services: frozenset[str] = frozenset()
    authenticated: bool = False

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Principals:
        found: dict[str, set[str]] = {"user": set(), "team": set(), "service": set()}
        authenticated = False
        for entry in entries:
            if entry == "authenticated":
                authenticated = True
            else:
                kind, _, name = entry.partition(":")
                found[kind].add(name)
        return cls(
            frozenset(found["user"]),
            frozenset(found["team"]),
            frozenset(found["service"]),
            authenticated,
        )

    def include(self, account: Account | None) -> bool:
        if account is None:
            return False
        if self.authenticated or not self.teams.isdisjoint(account.teams):
            return True
        names = self.users if account.kind == "user" else self.services
        return account.name in names


@dataclass(frozen=True, slots=True)
class Rule:
    index: int
    match: str
    public: bool
    pull: Principals
    push: Principals
    delete: Principals
    comment: str
    pattern: re.Pattern[str] = field(repr=False, compare=False)

    @classmethod
    def compile(cls, index: int, spec: RuleSpec) -> Rule:
        return cls(
            index=index,
            match=spec.match,
            public=spec.visibility == "public",
            pull=Principals.parse(spec.pull),
            push=Principals.parse(spec.push),
            delete=Principals.parse(spec.delete),
            comment=spec.comment,
            pattern=glob_regex(spec.match),
        )

    def may_pull(self, account: Account | None) -> bool:
        # push implies pull: a client cannot push without reading back.
        return self.public or self.pull.include(account) or self.push.include(account)

    def grants(self, account: Account | None, action: Action) -> bool:
        if action == "pull":
            return self.may_pull(account)
        if action == "push":
            return self.push.include(account)
        # delete only with pull, else its answers would reveal what exists.
        return self.delete.include(account) and self.may_pull(account)

    def describe(self) -> str:
        text = f'rule {self.index} match "{self.match}"'
        return f"{text} ({self.comment})" if self.comment else text


class RuleIndex:
    """First-match lookup without scanning every rule.

    Literal rules are found by exact name, rules whose first component is literal by that
    component; only rules with a wildcard in the first component are scanned for every name.
    The first match is the lowest index among the first matches of each bucket.
    """

    def __init__(self, rules: Sequence[Rule]) -> None:
        self._exact: dict[str, Rule] = {}
        self._by_first: dict[str, list[Rule]] = {}
        self._wild: list[Rule] = []
        for rule in rules:
            first = rule.match.split("/", 1)[0]
            if is_literal(rule.match):
                self._exact.setdefault(rule.match, rule)
            elif is_literal(first):
                self._by_first.setdefault(first, []).append(rule)
            else:
                self._wild.append(rule)

    def first_match(self, name: str) -> Rule | None:
        best = self._exact.get(name)
        for bucket in (self._by_first.get(name.split("/", 1)[0], ()), self._wild):
            for rule in bucket:
                if best is not None and rule.index > best.index:
                    break
                if rule.pattern.fullmatch(name):
                    best = rule
                    break
        return best


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: Reason
    rule: Rule | None = None

    def explain(self) -> str:
        verdict = "allow" if self.allowed else "deny"
        if self.reason is Reason.RULE and self.rule is not None:
            return f"{verdict}: {self.rule.describe()}"
        return f"{verdict}: {self.reason.value}"


@dataclass(frozen=True)
class Policy:
    """Accounts and ordered rules of one config snapshot."""

    accounts: Mapping[str, Account]
    rules: tuple[Rule, ...]
    index: RuleIndex = field(repr=False, compare=False)

    @classmethod
    def build(cls, accounts: Mapping[str, Account], specs: Sequence[RuleSpec]) -> Policy:
        rules = tuple(Rule.compile(i, spec) for i, spec in enumerate(specs))
        return cls(accounts=accounts, rules=rules, index=RuleIndex(rules))


def account_gate(policy: Policy, subject: str | None, now: datetime) -> Decision | None:
    """The account state that decides on its own (refusal or admin), or None to ask the rules."""
    if subject is None:
        return None
    account = policy.accounts.get(subject)
    if account is None:
        return Decision(False, Reason.UNKNOWN_ACCOUNT)
    state = account.state(now)
    if state is AccountState.DISABLED:
        return Decision(False, Reason.DISABLED)
    if state is AccountState.EXPIRED:
        return Decision(False, Reason.EXPIRED)
    if account.admin:
        return Decision(True, Reason.ADMIN)
    return None


def rule_decision(
    policy: Policy, subject: str | None, repository: str, action: Action
) -> Decision:
    """What the first matching rule says; no match means deny."""
    rule = policy.index.first_match(repository)
    if rule is None:
        return Decision(False, Reason.NO_RULE)
    account = policy.accounts.get(subject) if subject is not None else None
    return Decision(rule.grants(account, action), Reason.RULE, rule)


def decide(
    policy: Policy, subject: str | None, repository: str, action: Action, now: datetime
) -> Decision:
    """Allow or deny `action` on `repository` for `subject` (None: anonymous), with the why."""
    return account_gate(policy, subject, now) or rule_decision(policy, subject, repository, action)
