"""Compiled rules: who each rule names, what it grants, and a first-match index over them."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from gateway.config.globs import glob_regex, is_literal, is_templated
from gateway.config.schema import RuleSpec
from gateway.policy.actions import Action
from gateway.policy.names import valid_component
from gateway.policy.subject import Subject

PRINCIPAL_KINDS = ("user", "team", "service", "workload")


@dataclass(frozen=True, slots=True)
class Principals:
    users: frozenset[str] = frozenset()
    teams: frozenset[str] = frozenset()
    services: frozenset[str] = frozenset()
    workloads: frozenset[str] = frozenset()
    authenticated: bool = False

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Principals:
        found: dict[str, set[str]] = {kind: set() for kind in PRINCIPAL_KINDS}
        authenticated = False
        for entry in entries:
            if entry == "authenticated":
                authenticated = True
            else:
                kind, _, name = entry.partition(":")
                found[kind].add(name)
        return cls(frozenset(found["user"]), frozenset(found["team"]),
                   frozenset(found["service"]), frozenset(found["workload"]), authenticated)

    def include(self, subject: Subject | None, teams: frozenset[str]) -> bool:
        """Whether `subject` (in `teams`) is named here; `authenticated` excludes workloads."""
        if subject is None:
            return False
        if self.authenticated and subject.kind != "workload":
            return True
        if not self.teams.isdisjoint(teams):
            return True
        if subject.kind == "service":
            return subject.name in self.services
        if subject.kind == "workload":
            return subject.name in self.workloads
        return subject.name in self.users

    def entries(self) -> list[str]:
        """As written in a config file, sorted: for pages and explanations."""
        return [*(["authenticated"] if self.authenticated else []),
                *(f"team:{n}" for n in sorted(self.teams)),
                *(f"user:{n}" for n in sorted(self.users)),
                *(f"service:{n}" for n in sorted(self.services)),
                *(f"workload:{n}" for n in sorted(self.workloads))]


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
    templated: bool = False  # `{user}` in match: the caller's own name, per caller

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
            templated=is_templated(spec.match),
        )

    def fits(self, name: str, user: str | None) -> bool:
        """Whether `match` fits `name` for a caller whose `{user}` is `user` (see `namespace`);
        None (anonymous, or a name that is no path component) fits no `{user}` rule."""
        found = self.pattern.fullmatch(name)
        if found is None:
            return False
        return not self.templated or (user is not None and found["user"] == user)

    def may_pull(self, subject: Subject | None, teams: frozenset[str]) -> bool:
        # push implies pull: a client cannot push without reading back.
        return self.public or self.pull.include(subject, teams) or self.push.include(subject, teams)

    def grants(self, subject: Subject | None, teams: frozenset[str], action: Action) -> bool:
        if action == "pull":
            return self.may_pull(subject, teams)
        if action == "push":
            return self.push.include(subject, teams)
        # delete only with pull, else its answers would reveal what exists.
        return self.delete.include(subject, teams) and self.may_pull(subject, teams)

    def describe(self) -> str:
        text = f'rule {self.index} match "{self.match}"'
        return f"{text} ({self.comment})" if self.comment else text


class RuleIndex:
    """First-match lookup without scanning every rule.

    Literal rules are found by exact name, rules whose first component is literal by that
    component; only rules with a wildcard in the first component are scanned for every name.
    The first match is the lowest index among the first matches of each bucket. A `{user}`
    rule is never literal (its first component is, so it sits in a bucket, checked per caller).
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

    def first_match(self, name: str, user: str | None = None) -> Rule | None:
        """The first rule fitting `name` for a caller whose `{user}` is `user` (`namespace`)."""
        best = self._exact.get(name)
        for bucket in (self._by_first.get(name.split("/", 1)[0], ()), self._wild):
            for rule in bucket:
                if best is not None and rule.index > best.index:
                    break
                if rule.fits(name, user):
                    best = rule
                    break
        return best


def namespace(subject: Subject | None) -> str | None:
    """What `{user}` stands for when `subject` asks: its account name, for every kind of
    account, if that is a valid path component; None (no `{user}` rule fits) otherwise."""
    if subject is None or not valid_component(subject.name):
        return None
    return subject.name
