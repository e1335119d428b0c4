"""The access decision: a pure function of (policy, subject, repository, action), no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from gateway.config.schema import RuleSpec, TeamSpec
from gateway.policy.accounts import Account, AccountState
from gateway.policy.actions import Action
from gateway.policy.rules import Rule, RuleIndex, namespace
from gateway.policy.subject import Subject


class Reason(Enum):
    RULE = "rule"
    NO_RULE = "no rule matched"
    ADMIN = "admin"
    DISABLED = "disabled"
    EXPIRED = "expired"
    UNKNOWN_ACCOUNT = "unknown account"


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


def _team_index(teams: Mapping[str, TeamSpec]) -> tuple[dict[str, frozenset[str]],
                                                         dict[str, frozenset[str]]]:
    by_member: dict[str, set[str]] = {}
    by_group: dict[str, set[str]] = {}
    for team, spec in teams.items():
        for member in spec.members:
            by_member.setdefault(member, set()).add(team)
        for group in spec.groups:
            by_group.setdefault(group, set()).add(team)
    return ({k: frozenset(v) for k, v in by_member.items()},
            {k: frozenset(v) for k, v in by_group.items()})


@dataclass(frozen=True)
class Policy:
    """Accounts, teams and ordered rules of one config snapshot."""

    accounts: Mapping[str, Account]
    rules: tuple[Rule, ...]
    index: RuleIndex = field(repr=False, compare=False)
    teams_by_member: Mapping[str, frozenset[str]] = field(default_factory=dict)
    teams_by_group: Mapping[str, frozenset[str]] = field(default_factory=dict)
    disabled_identities: frozenset[str] = frozenset()  # lowercased names

    @classmethod
    def build(cls, accounts: Mapping[str, Account], specs: Sequence[RuleSpec],
              teams: Mapping[str, TeamSpec] | None = None,
              disabled_identities: Sequence[str] = ()) -> Policy:
        rules = tuple(Rule.compile(i, spec) for i, spec in enumerate(specs))
        by_member, by_group = _team_index(teams or {})
        return cls(accounts=accounts, rules=rules, index=RuleIndex(rules),
                   teams_by_member=by_member, teams_by_group=by_group,
                   disabled_identities=frozenset(n.lower() for n in disabled_identities))

    def teams_of(self, subject: Subject | None) -> frozenset[str]:
        """The teams `subject` is in: by name as a member, and through its groups."""
        if subject is None:
            return frozenset()
        teams = self.teams_by_member.get(subject.name, frozenset())
        for group in subject.groups:
            teams = teams | self.teams_by_group.get(group, frozenset())
        return teams

    def subject_for(self, name: str) -> Subject | None:
        """The local account `name` as a Subject, or None when there is none."""
        account = self.accounts.get(name)
        return Subject(account.name, account.kind) if account is not None else None


def account_gate(policy: Policy, subject: Subject | None, now: datetime) -> Decision | None:
    """The account state that decides on its own (refusal or admin), or None to ask the rules."""
    if subject is None:
        return None
    if not subject.local:
        if subject.name.lower() in policy.disabled_identities:
            return Decision(False, Reason.DISABLED)
        return None
    account = policy.accounts.get(subject.name)
    if account is None or account.kind != subject.kind:
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
    policy: Policy, subject: Subject | None, repository: str, action: Action
) -> Decision:
    """What the first matching rule says (`{user}` read as the subject's name); no match: deny."""
    rule = policy.index.first_match(repository, namespace(subject))
    if rule is None:
        return Decision(False, Reason.NO_RULE)
    return Decision(rule.grants(subject, policy.teams_of(subject), action), Reason.RULE, rule)


def decide(
    policy: Policy, subject: Subject | None, repository: str, action: Action, now: datetime
) -> Decision:
    """Allow or deny `action` on `repository` for `subject` (None: anonymous), with the why."""
    return account_gate(policy, subject, now) or rule_decision(policy, subject, repository, action)
