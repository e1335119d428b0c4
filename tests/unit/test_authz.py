"""Table-driven access decisions, in the manner of docker_auth's acl_test.go.

Subjects are named as the table's strings: a local account's Subject when the policy has one,
else a user Subject the config does not know (an unknown account), None for anonymous.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.config.schema import RuleSpec, TeamSpec
from gateway.policy.accounts import Account
from gateway.policy.decide import Policy, Reason, decide
from gateway.policy.subject import Subject

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def account(name: str, kind: str = "user", **extra: object) -> Account:
    return Account(name, kind, b"$2b$04$hash", **extra)  # type: ignore[arg-type]


ACCOUNTS = {
    a.name: a
    for a in (
        account("alice"),
        account("bob"),
        account("carol", admin=True),
        account("dave", disabled=True),
        account("erin"),
        account("ci-bot", kind="service", expires=NOW + timedelta(days=30)),
        account("old-bot", kind="service", expires=NOW - timedelta(days=1)),
        account("pusher"),
        account("deleter"),
    )
}
RULES = [
    RuleSpec(
        match="myteam/*",
        pull=("team:myteam", "service:ci-bot", "service:old-bot"),
        push=("team:myteam",),
        delete=("user:alice", "user:deleter"),
        comment="team",
    ),
    RuleSpec(match="library/**", visibility="public", push=("user:carol",), comment="public"),
    RuleSpec(match="shared/app", pull=("authenticated",), push=("user:pusher",)),
    RuleSpec(match="ops/*/tools", pull=("team:ops",), delete=("user:deleter",)),
    RuleSpec(match="*/sandbox", pull=("user:bob",), push=("user:bob",)),
    RuleSpec(match="myteam/secret", pull=("user:bob",), comment="shadowed by rule 0"),
]
# Teams as the config's `teams` section declares them: the one source of membership.
TEAMS = {"myteam": TeamSpec(members=("alice", "dave")), "ops": TeamSpec(members=("erin",))}
POLICY = Policy.build(ACCOUNTS, RULES, TEAMS)


def subject(name: str | None) -> Subject | None:
    if name is None:
        return None
    return POLICY.subject_for(name) or Subject(name)

CASES = [
    # (subject, repository, action, allowed, reason, rule index)
    ("alice", "myteam/app", "pull", True, Reason.RULE, 0),
    ("alice", "myteam/app", "push", True, Reason.RULE, 0),
    ("alice", "myteam/app", "delete", True, Reason.RULE, 0),
    ("bob", "myteam/app", "pull", False, Reason.RULE, 0),
    ("bob", "myteam/secret", "pull", False, Reason.RULE, 0),  # first match wins
    (None, "myteam/app", "pull", False, Reason.RULE, 0),
    ("ci-bot", "myteam/app", "pull", True, Reason.RULE, 0),
    ("ci-bot", "myteam/app", "push", False, Reason.RULE, 0),
    ("old-bot", "myteam/app", "pull", False, Reason.EXPIRED, None),
    ("dave", "myteam/app", "pull", False, Reason.DISABLED, None),
    ("zed", "myteam/app", "pull", False, Reason.UNKNOWN_ACCOUNT, None),
    ("carol", "anything/at/all", "delete", True, Reason.ADMIN, None),
    ("deleter", "myteam/app", "delete", False, Reason.RULE, 0),  # delete needs pull too
    ("deleter", "myteam/app", "pull", False, Reason.RULE, 0),
    # `*` stays inside one component; a literal matches only itself.
    ("alice", "myteam/app/nested", "pull", False, Reason.NO_RULE, None),
    ("alice", "myteam", "pull", False, Reason.NO_RULE, None),
    # `**` needs at least one component.
    (None, "library", "pull", False, Reason.NO_RULE, None),
    (None, "library/busybox", "pull", True, Reason.RULE, 1),
    (None, "library/a/b/c", "pull", True, Reason.RULE, 1),
    (None, "library/busybox", "push", False, Reason.RULE, 1),
    ("bob", "library/busybox", "push", False, Reason.RULE, 1),
    ("carol", "library/busybox", "push", True, Reason.ADMIN, None),
    ("bob", "shared/app", "pull", True, Reason.RULE, 2),
    (None, "shared/app", "pull", False, Reason.RULE, 2),
    ("bob", "shared/app-evil", "pull", False, Reason.NO_RULE, None),
    ("bob", "shared/app/x", "pull", False, Reason.NO_RULE, None),
    ("bob", "shared/application", "pull", False, Reason.NO_RULE, None),
    ("pusher", "shared/app", "pull", True, Reason.RULE, 2),  # push implies pull
    ("pusher", "shared/app", "delete", False, Reason.RULE, 2),
    ("erin", "ops/x/tools", "pull", True, Reason.RULE, 3),
    ("erin", "ops/x/y/tools", "pull", False, Reason.NO_RULE, None),
    ("deleter", "ops/x/tools", "delete", False, Reason.RULE, 3),
    ("bob", "anyone/sandbox", "push", True, Reason.RULE, 4),
    ("bob", "myteam/sandbox", "push", False, Reason.RULE, 0),  # rule 0 comes first
    ("alice", "nothing/matches", "pull", False, Reason.NO_RULE, None),
]


@pytest.mark.parametrize(("name", "repository", "action", "allowed", "reason", "rule"), CASES)
def test_decide(
    name: str | None, repository: str, action: str, allowed: bool, reason: Reason, rule: int | None
) -> None:
    decision = decide(POLICY, subject(name), repository, action, NOW)  # type: ignore[arg-type]
    assert (decision.allowed, decision.reason) == (allowed, reason)
    assert (decision.rule.index if decision.rule else None) == rule


def test_explain_names_the_rule() -> None:
    decision = decide(POLICY, subject("alice"), "myteam/app", "push", NOW)
    assert decision.explain() == 'allow: rule 0 match "myteam/*" (team)'
    assert decide(POLICY, subject("alice"), "zzz/x", "pull", NOW).explain() == "deny: no rule matched"
    assert decide(POLICY, subject("dave"), "myteam/x", "pull", NOW).explain() == "deny: disabled"


def test_index_agrees_with_a_plain_scan() -> None:
    """The rule index is an optimisation: it must pick what scanning in order would pick."""
    specs = [RuleSpec(match=m) for m in ("a/*", "a/b", "*/b", "**", "a/**", "c/*/d", "c/x/d", "*", "a/b/c")]
    policy = Policy.build({}, specs)
    for name in ("a/b", "a/c", "x/b", "c/x/d", "c/y/d", "a/b/c", "z", "q/r/s"):
        expected = next((r for r in policy.rules if r.pattern.fullmatch(name)), None)
        assert policy.index.first_match(name) is expected, name
