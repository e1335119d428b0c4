"""Personal namespaces: `{user}` in a rule's match is the caller's own name, for every account kind.

Table-driven like test_authz.py. Subjects are written as "KIND:NAME" (a local account is "NAME")
or None for anonymous.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.access.decisions import Decider
from gateway.config.globs import glob_regex, personal
from gateway.config.load import load_config_text
from gateway.config.problems import ConfigError
from gateway.config.schema import RuleSpec, TeamSpec
from gateway.metrics import Metrics
from gateway.policy.accounts import Account
from gateway.policy.decide import Policy, Reason, decide
from gateway.policy.rules import Rule
from gateway.policy.subject import Subject
from gateway.policy.visibility import pull_prefixes
from gateway.runtime.snapshot import build_snapshot
from gateway.state.decisions import MemoryDecisionCache

NOW = datetime(2026, 6, 1, tzinfo=UTC)
HASH = "$2b$12$6XQPojGxk4hBAFFQdrd0Y.tPSbZZ8e1FSDw3GXphjjhGDPy2Bf/UG"

ACCOUNTS = {a.name: a for a in (
    Account("alice", "user", b"x"),
    Account("bob", "user", b"x"),
    Account("a.b", "user", b"x"),        # '.' is a regex metacharacter
    Account("ci-bot", "service", b"x"),
    Account("root", "user", b"x", admin=True),
)}
RULES = [
    RuleSpec(match="home/alice/shared", pull=("user:bob",), comment="literal before"),
    RuleSpec(match="home/{user}/**", pull=("authenticated",), push=("authenticated",),
             comment="own home"),
    RuleSpec(match="home/bob/pinned", pull=("user:alice",), comment="literal after"),
    RuleSpec(match="*/{user}", pull=("team:devs",), comment="own repo in any namespace"),
    RuleSpec(match="mirror/{user}/{user}", pull=("workload:deploy",), comment="repeated"),
    RuleSpec(match="home/**", pull=("user:root",), comment="everything else under home"),
]
POLICY = Policy.build(ACCOUNTS, RULES, {"devs": TeamSpec(groups=("developers",))})


def subject(text: str | None) -> Subject | None:
    if text is None:
        return None
    kind, sep, name = text.partition(":")
    if not sep:
        found = POLICY.subject_for(text)
        assert found is not None, text
        return found
    groups = frozenset({"developers"}) if kind in ("directory", "sso") else frozenset()
    return Subject(name, kind, groups)  # type: ignore[arg-type]


CASES = [
    # (subject, repository, action, allowed, reason, rule index)
    ("alice", "home/alice/x", "pull", True, Reason.RULE, 1),
    ("alice", "home/alice/x", "push", True, Reason.RULE, 1),
    ("alice", "home/alice/a/b/c", "push", True, Reason.RULE, 1),
    ("alice", "home/alice/x", "delete", False, Reason.RULE, 1),
    ("alice", "home/alice", "pull", False, Reason.RULE, 3),  # `**` needs one: `*/{user}` fits
    # Another's home: the `{user}` rule does not fit, the next rule (root only) decides.
    ("bob", "home/alice/x", "pull", False, Reason.RULE, 5),
    ("bob", "home/alice/x", "push", False, Reason.RULE, 5),
    (None, "home/alice/x", "pull", False, Reason.RULE, 5),
    (None, "home/alice/x", "push", False, Reason.RULE, 5),
    ("root", "home/alice/x", "push", True, Reason.ADMIN, None),
    # A literal rule before the template wins, for the owner too; one after wins only where the
    # template does not fit the caller.
    ("bob", "home/alice/shared", "pull", True, Reason.RULE, 0),
    ("alice", "home/alice/shared", "push", False, Reason.RULE, 0),
    ("bob", "home/bob/pinned", "push", True, Reason.RULE, 1),
    ("alice", "home/bob/pinned", "pull", True, Reason.RULE, 2),
    ("alice", "home/bob/pinned", "push", False, Reason.RULE, 2),
    # Every kind of account: service, directory, SSO, workload.
    ("ci-bot", "home/ci-bot/cache", "push", True, Reason.RULE, 1),
    ("directory:dora", "home/dora/x", "push", True, Reason.RULE, 1),
    ("directory:dora", "home/alice/x", "pull", False, Reason.RULE, 5),
    ("sso:sam", "home/sam/x", "pull", True, Reason.RULE, 1),
    ("sso:sam", "team/sam", "pull", True, Reason.RULE, 3),  # through group developers
    ("directory:dora", "team/sam", "pull", False, Reason.NO_RULE, None),
    ("workload:deploy", "home/deploy/x", "pull", False, Reason.RULE, 1),  # not authenticated
    ("workload:deploy", "mirror/deploy/deploy", "pull", True, Reason.RULE, 4),
    ("workload:deploy", "mirror/deploy/other", "pull", False, Reason.NO_RULE, None),
    ("workload:other", "mirror/deploy/deploy", "pull", False, Reason.NO_RULE, None),
    # Names that are no valid path component never fit a `{user}` rule.
    ("sso:Alice", "home/alice/x", "pull", False, Reason.RULE, 5),
    ("directory:a@b", "home/a@b/x", "pull", False, Reason.RULE, 5),
    ("directory:x..y", "home/x..y/z", "pull", False, Reason.RULE, 5),
    ("directory:", "home//x", "pull", False, Reason.NO_RULE, None),
    # The name is compared, never spliced into a regex: `a.b` is not `axb`.
    ("a.b", "home/a.b/x", "push", True, Reason.RULE, 1),
    ("a.b", "home/axb/x", "pull", False, Reason.RULE, 5),
    ("directory:.*", "home/alice/x", "pull", False, Reason.RULE, 5),
]


@pytest.mark.parametrize(("name", "repository", "action", "allowed", "reason", "rule"), CASES)
def test_personal_namespace(
    name: str | None, repository: str, action: str, allowed: bool, reason: Reason, rule: int | None
) -> None:
    decision = decide(POLICY, subject(name), repository, action, NOW)  # type: ignore[arg-type]
    assert (decision.allowed, decision.reason) == (allowed, reason)
    assert (decision.rule.index if decision.rule else None) == rule


def test_index_agrees_with_substituting_then_scanning() -> None:
    """The index compares the `{user}` component with the name; the contract says substitute
    the name, then match: both must pick the same rule for every caller."""
    specs = [RuleSpec(match=m) for m in ("a/{user}", "a/b", "*/{user}/c", "a/*", "**",
                                         "a/{user}/**", "x/{user}", "m/{user}/{user}")]
    policy = Policy.build({}, specs)

    def substituted(rule: Rule, name: str, user: str | None) -> bool:
        if not rule.templated:
            return rule.pattern.fullmatch(name) is not None
        return user is not None and glob_regex(personal(rule.match, user)).fullmatch(name) is not None

    for user in ("b", "c", "b.c", None):
        for name in ("a/b", "a/c", "z/b/c", "z/c/c", "a/b/d", "x/b", "x/c", "q", "x/b.c",
                     "x/bxc", "m/b/b", "m/b/c", "m/b.c/b.c"):
            expected = next((r for r in policy.rules if substituted(r, name, user)), None)
            assert policy.index.first_match(name, user) is expected, (user, name)


def test_catalog_prefixes_are_personal() -> None:
    def prefixes(text: str | None) -> tuple[str, ...] | None:
        return pull_prefixes(POLICY, subject(text), NOW)

    assert prefixes("alice") == ("home/alice/", "home/bob/pinned")
    assert prefixes("bob") == ("home/alice/shared", "home/bob/")
    assert prefixes(None) == ()
    assert prefixes("directory:a@b") == ()  # no valid component: the template gives nothing
    assert prefixes("a.b") == ("home/a.b/",)
    assert prefixes("sso:sam") is None  # `*/{user}` starts with a wildcard
    assert prefixes("workload:deploy") == ("mirror/deploy/deploy",)
    assert prefixes("root") is None


async def test_a_cached_personal_decision_is_never_another_callers() -> None:
    loaded = load_config_text(CONFIG, Path("."))
    snapshot = build_snapshot(loaded)
    decider = Decider(MemoryDecisionCache(100), Metrics())
    alice, bob = snapshot.policy.subject_for("alice"), snapshot.policy.subject_for("bob")
    dora = Subject("dora", "directory")
    for _ in range(2):  # the second round answers from the cache
        assert (await decider.decide(snapshot, alice, "home/alice/x", ("push",))).allowed
        assert not (await decider.decide(snapshot, bob, "home/alice/x", ("push",))).allowed
        assert not (await decider.decide(snapshot, None, "home/alice/x", ("pull",))).allowed
        assert not (await decider.decide(snapshot, dora, "home/alice/x", ("pull",))).allowed
        assert (await decider.decide(snapshot, dora, "home/dora/x", ("pull",))).allowed


CONFIG = f"""
server: {{public_url: "http://127.0.0.1:5050"}}
upstream: {{url: "http://127.0.0.1:5000"}}
token: {{service: gw}}
users:
  alice: {{password_hash: "{HASH}"}}
  bob: {{password_hash: "{HASH}"}}
repositories:
  - {{match: "home/{{user}}/**", pull: [authenticated], push: [authenticated]}}
"""


@pytest.mark.parametrize(("match", "problem"), [
    ("{user}/x", "'{user}' cannot be the first path component"),
    ("{user}", "'{user}' cannot be the first path component"),
    ("home/x-{user}", "'{user}' must be a whole path component"),
    ("home/{user}*", "'{user}' must be a whole path component"),
    ("home/{name}/**", "the only placeholder is '{user}'"),
    ("home/{USER}", "the only placeholder is '{user}'"),
    ("home/{user", "the only placeholder is '{user}'"),
    ("home/user}", "the only placeholder is '{user}'"),
])
def test_user_placeholder_config_errors(match: str, problem: str) -> None:
    text = CONFIG.replace('"home/{user}/**"', f'"{match}"')
    with pytest.raises(ConfigError) as info:
        load_config_text(text, Path("."))
    problems = [str(p) for p in info.value.problems]
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"repositories[0].match: bad glob {match!r}: {problem}")


@pytest.mark.parametrize("match", ["home/{user}/**", "a/{user}", "*/{user}/x",
                                   "mirror/{user}/{user}", "a/**/{user}"])
def test_user_placeholder_accepted(match: str) -> None:
    loaded = load_config_text(CONFIG.replace('"home/{user}/**"', f'"{match}"'), Path("."))
    assert loaded.settings.repositories[0].match == match
