"""What a reload changed, in words for the log: rules, accounts, teams, identity sections."""

from __future__ import annotations

from collections.abc import Iterable

from gateway.runtime.snapshot import Snapshot

IDENTITY_SECTIONS = ("directory", "sso", "federation", "disabled_identities")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _set_change(noun: str, before: Iterable[str], after: Iterable[str]) -> list[str]:
    old, new = set(before), set(after)
    parts = []
    if added := sorted(new - old):
        parts.append(f"{_count(len(added), noun)} added ({', '.join(added)})")
    if removed := sorted(old - new):
        parts.append(f"{_count(len(removed), noun)} removed ({', '.join(removed)})")
    return parts


def _rule_change(old: Snapshot, new: Snapshot) -> list[str]:
    before = [r.describe() for r in old.policy.rules]
    after = [r.describe() for r in new.policy.rules]
    if before == after:
        old_specs, new_specs = old.settings.repositories, new.settings.repositories
        return [] if old_specs == new_specs else ["rule principals or visibility changed"]
    parts = []
    if added := len(set(after) - set(before)):
        parts.append(f"{_count(added, 'rule')} added")
    if removed := len(set(before) - set(after)):
        parts.append(f"{_count(removed, 'rule')} removed")
    return parts or ["rules reordered"]


def _account_change(old: Snapshot, new: Snapshot) -> list[str]:
    parts = _set_change("account", old.policy.accounts, new.policy.accounts)
    kept = set(old.policy.accounts) & set(new.policy.accounts)
    disabled = sorted(n for n in kept if new.policy.accounts[n].disabled
                      and not old.policy.accounts[n].disabled)
    enabled = sorted(n for n in kept if old.policy.accounts[n].disabled
                     and not new.policy.accounts[n].disabled)
    changed = sorted(n for n in kept if old.policy.accounts[n] != new.policy.accounts[n]
                     and n not in disabled and n not in enabled)
    if disabled:
        parts.append(f"{_count(len(disabled), 'account')} disabled ({', '.join(disabled)})")
    if enabled:
        parts.append(f"{_count(len(enabled), 'account')} enabled ({', '.join(enabled)})")
    if changed:
        parts.append(f"{_count(len(changed), 'account')} changed ({', '.join(changed)})")
    return parts


def describe_changes(old: Snapshot, new: Snapshot, kept: Iterable[str] = ()) -> str:
    """One line: what differs between the running and the new config (never a secret)."""
    parts = _rule_change(old, new) + _account_change(old, new)
    parts += _set_change("team", old.settings.teams, new.settings.teams)
    changed_teams = sorted(t for t in set(old.settings.teams) & set(new.settings.teams)
                           if old.settings.teams[t] != new.settings.teams[t])
    if changed_teams:
        parts.append(f"teams changed ({', '.join(changed_teams)})")
    parts += [f"{section} changed" for section in IDENTITY_SECTIONS
              if getattr(old.settings, section) != getattr(new.settings, section)]
    for section in ("cache", "auth", "ui", "config_watch"):
        if getattr(old.settings, section) != getattr(new.settings, section):
            parts.append(f"{section} settings changed")
    if kept := list(kept):
        parts.append("ignored until a restart: " + ", ".join(kept))
    return "; ".join(parts) if parts else "nothing that decides access changed"
