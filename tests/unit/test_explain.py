"""Explanations name the rule and who it granted to: user, service, workload, authenticated, a
team by membership, or a team through a directory or SSO group (and which group)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.config.schema import RuleSpec, TeamSpec
from gateway.policy.accounts import Account
from gateway.policy.decide import Policy, decide
from gateway.policy.explain import explain, explained_subject
from gateway.policy.subject import Subject

NOW = datetime(2026, 6, 1, tzinfo=UTC)
ACCOUNTS = {a.name: a for a in (
    Account("alice", "user", b"x"),
    Account("bob", "user", b"x"),
    Account("ci-bot", "service", b"x"),
    Account("carol", "user", b"x", admin=True),
)}
TEAMS = {
    "platform": TeamSpec(members=("alice",), groups=("platform-admins", "ops")),
    "readers": TeamSpec(groups=("everyone-ldap",)),
}
RULES = [
    RuleSpec(match="platform/*", pull=("team:readers", "service:ci-bot"),
             push=("team:platform", "user:alice"), comment="platform images"),
    RuleSpec(match="library/**", visibility="public", push=("user:bob",)),
    RuleSpec(match="shared/*", pull=("authenticated", "workload:deploy")),
    RuleSpec(match="trash/*", pull=("user:bob",), delete=("team:platform",)),
]
POLICY = Policy.build(ACCOUNTS, RULES, TEAMS)
P = 'rule 0 match "platform/*" (platform images)'


@pytest.mark.parametrize(("user", "groups", "repository", "action", "text"), [
    # Its own name is the most specific, before its team.
    ("alice", "", "platform/app", "push", f"allow: {P}, granted to user:alice"),
    ("alice", "", "platform/app", "pull", f"allow: {P}, granted to user:alice (push grants pull)"),
    ("user:dora", "platform-admins", "platform/app", "push",
     f"allow: {P}, granted to team:platform via directory group platform-admins"),
    # Two groups lead to the team: the first by name says so.
    ("user:dora", "platform-admins,ops", "platform/app", "push",
     f"allow: {P}, granted to team:platform via directory group ops"),
    ("user:dora", "everyone-ldap, platform-admins", "platform/app", "pull",
     f"allow: {P}, granted to team:readers via directory group everyone-ldap"),
    ("user:dora", "unrelated", "platform/app", "pull", f"deny: {P}"),
    ("ci-bot", "", "platform/app", "pull", f"allow: {P}, granted to service:ci-bot"),
    ("-", "", "library/x", "pull",
     'allow: rule 1 match "library/**", granted to everyone (public)'),
    ("bob", "", "library/x", "push", 'allow: rule 1 match "library/**", granted to user:bob'),
    ("bob", "", "shared/x", "pull", 'allow: rule 2 match "shared/*", granted to authenticated'),
    ("workload:deploy", "", "shared/x", "pull",
     'allow: rule 2 match "shared/*", granted to workload:deploy'),
    ("workload:other", "", "shared/x", "pull", 'deny: rule 2 match "shared/*"'),
    ("alice", "", "trash/x", "delete", 'deny: rule 3 match "trash/*"'),  # delete needs pull
    ("carol", "", "trash/x", "delete", "allow: admin"),
    ("alice", "", "nowhere/x", "pull", "deny: no rule matched"),
    ("zed", "", "shared/x", "pull", "deny: unknown account"),
])
def test_explanation_names_who_granted(user: str, groups: str, repository: str, action: str,
                                       text: str) -> None:
    subject = explained_subject(POLICY, user, groups)
    decision = decide(POLICY, subject, repository, action, NOW)  # type: ignore[arg-type]
    assert explain(POLICY, subject, action, decision) == text  # type: ignore[arg-type]


def test_a_member_by_name_is_named_before_a_group() -> None:
    policy = Policy.build(ACCOUNTS, [RuleSpec(match="p/*", pull=("team:platform",))], TEAMS)
    member = explained_subject(policy, "alice", "ops")
    assert member is not None and member.kind == "user"  # local first: --groups does not apply
    decision = decide(policy, member, "p/x", "pull", NOW)
    assert explain(policy, member, "pull", decision).endswith("granted to team:platform")


def test_sso_groups_are_called_so() -> None:
    subject = Subject("sam", "sso", frozenset({"ops"}))
    decision = decide(POLICY, subject, "platform/app", "push", NOW)
    assert explain(POLICY, subject, "push", decision).endswith(
        "granted to team:platform via SSO group ops")


def test_explained_subjects() -> None:
    assert explained_subject(POLICY, "-") is None
    assert explained_subject(POLICY, "bob") == POLICY.subject_for("bob")
    dora = explained_subject(POLICY, "user:dora", " a, b ,")
    assert dora is not None and (dora.kind, dora.name, dora.groups) == (
        "directory", "dora", frozenset({"a", "b"}))
    unknown = explained_subject(POLICY, "dora")
    assert unknown is not None and unknown.kind == "user"  # not local, no groups: unknown
