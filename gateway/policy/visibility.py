"""Where the names a caller may pull can be: rule prefixes that bound a catalog walk."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from gateway.config.globs import literal_prefix, personal
from gateway.policy.decide import Policy, account_gate
from gateway.policy.names import catalog_key
from gateway.policy.rules import Rule, namespace
from gateway.policy.subject import Subject


def merge_prefixes(prefixes: Iterable[str]) -> tuple[str, ...] | None:
    """Sorted prefixes with those covered by a shorter one dropped; None: every name."""
    kept: list[str] = []
    for prefix in sorted(set(prefixes), key=catalog_key):
        if not prefix:
            return None
        if kept and prefix.startswith(kept[-1]):
            continue
        kept.append(prefix)
    return tuple(kept)


def pull_prefixes(policy: Policy, subject: Subject | None,
                  now: datetime) -> tuple[str, ...] | None:
    """The literal prefixes of the rules that may grant `subject` pull.

    A superset (an earlier rule may still shadow a later one); the caller checks every name.
    None means anywhere (admins, or a granting rule that starts with a wildcard).
    """
    gate = account_gate(policy, subject, now)
    if gate is not None:
        return None if gate.allowed else ()
    teams = policy.teams_of(subject)
    user = namespace(subject)
    return merge_prefixes(prefix for r in policy.rules if r.may_pull(subject, teams)
                          if (prefix := rule_prefix(r, user)) is not None)


def rule_prefix(rule: Rule, user: str | None) -> str | None:
    """What every name `rule` fits for a caller whose `{user}` is `user` starts with (`home/alice/`
    for `home/{user}/**`); None when it fits no name for that caller."""
    if not rule.templated:
        return literal_prefix(rule.match)
    return None if user is None else literal_prefix(personal(rule.match, user))
