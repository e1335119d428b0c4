"""A decision in words for people (`explain`, /ui/access): the rule, and who it granted to.

Pure and off the hot path: requests and audit lines use `Decision.explain()`; this adds the
principal that matched, and for a team reached through a directory or SSO group, that group.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.policy.actions import Action
from gateway.policy.decide import Decision, Policy
from gateway.policy.rules import Principals, Rule
from gateway.policy.subject import Subject

GROUP_NOUNS = {"directory": "directory group", "sso": "SSO group"}


@dataclass(frozen=True, slots=True)
class TeamRoute:
    """How a subject is in a team: as a named member, or through one of its groups."""

    team: str
    group: str | None = None  # None: a member by name

    def describe(self, subject: Subject) -> str:
        if self.group is None:
            return f"team:{self.team}"
        return f"team:{self.team} via {GROUP_NOUNS.get(subject.kind, 'group')} {self.group}"


def team_routes(policy: Policy, subject: Subject) -> list[TeamRoute]:
    """Every team of `subject` (as `Policy.teams_of`), members first, then by group, sorted."""
    members = policy.teams_by_member.get(subject.name, frozenset())
    routes = [TeamRoute(team) for team in sorted(members)]
    seen = set(members)
    for group in sorted(subject.groups):
        for team in sorted(policy.teams_by_group.get(group, frozenset()) - seen):
            routes.append(TeamRoute(team, group))
            seen.add(team)
    return routes


def matched_principal(principals: Principals, policy: Policy, subject: Subject) -> str | None:
    """The entry of `principals` that names `subject`, the most specific one: its own name,
    then a team (by membership before by group), then `authenticated`; None when none does."""
    own = {"service": principals.services, "workload": principals.workloads}.get(
        subject.kind, principals.users)
    if subject.name in own:
        kind = subject.kind if subject.kind in ("service", "workload") else "user"
        return f"{kind}:{subject.name}"
    for route in team_routes(policy, subject):
        if route.team in principals.teams:
            return route.describe(subject)
    if principals.authenticated and subject.kind != "workload":
        return "authenticated"
    return None


def granted_to(policy: Policy, subject: Subject | None, rule: Rule, action: Action) -> str | None:
    """Who `rule` granted `action` to, in words; None when it did not grant it."""
    if action == "pull" and rule.public:
        return "everyone (public)"
    if subject is None:
        return None
    if action == "pull":
        return (matched_principal(rule.pull, policy, subject)
                or _implied(matched_principal(rule.push, policy, subject)))
    listed = rule.push if action == "push" else rule.delete
    return matched_principal(listed, policy, subject)


def _implied(principal: str | None) -> str | None:
    return None if principal is None else f"{principal} (push grants pull)"


def explain(policy: Policy, subject: Subject | None, action: Action, decision: Decision) -> str:
    """`decision.explain()`, and for a rule's grant the principal (and group) that matched."""
    text = decision.explain()
    if not decision.allowed or decision.rule is None:
        return text
    who = granted_to(policy, subject, decision.rule, action)
    return f"{text}, granted to {who}" if who else text


def explained_subject(policy: Policy, user: str, groups_text: str = "") -> Subject | None:
    """Who `explain USER` asks about. `-`: anonymous; `workload:NAME`; `user:NAME` or NAME: the
    local account, else an identity from a directory or SSO with the groups `g1,g2` (explain
    never asks the directory); a bare NAME that is not local and has no groups: unknown."""
    if user in ("-", ""):
        return None
    groups = frozenset(g.strip() for g in groups_text.split(",") if g.strip())
    kind, sep, name = user.partition(":")
    if sep and kind == "workload":
        return Subject(name, "workload")
    external = bool(groups) or (sep and kind == "user")
    name = name if sep and kind == "user" else user
    local = policy.subject_for(name)
    if local is not None:
        return local  # local accounts are looked up first, always
    return Subject(name, "directory", groups) if external else Subject(name)
