"""Checks across sections of the raw config: names, principals and team members that must exist."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from gateway.config.htpasswd import HtpasswdEntry, bcrypt_cost, is_account_name
from gateway.config.problems import Problem

LOW_BCRYPT_COST = 10
PRINCIPAL_KINDS = ("user", "team", "service", "workload")


def _mapping(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}


def reference_problems(
    data: Mapping[str, Any], htpasswd_users: Mapping[str, HtpasswdEntry]
) -> list[Problem]:
    """Every cross-reference problem in the raw config, tolerant of badly shaped sections."""
    users = _mapping(data, "users")
    services = _mapping(data, "service_accounts")
    teams = _mapping(data, "teams")
    problems = list(_name_problems(users, services, teams, htpasswd_users))
    all_users = set(users) | set(htpasswd_users)
    accounts = all_users | set(services)
    external = set(external_names(data, htpasswd_users))  # warnings, not problems
    for team, spec in teams.items():
        members = spec.get("members") if isinstance(spec, Mapping) else None
        if not isinstance(members, list):
            continue
        for index, member in enumerate(members):
            if member not in accounts and member not in external:
                problems.append(
                    Problem(f"teams.{team}.members[{index}]", f"unknown account {member!r}")
                )
    rules = data.get("repositories")
    workloads = federation_names(data)
    if isinstance(rules, list):
        for index, rule in enumerate(rules):
            if isinstance(rule, Mapping):
                problems.extend(_rule_problems(index, rule, all_users | external, set(services),
                                               set(teams), workloads))
    return problems


def _name_problems(
    users: Mapping[str, Any],
    services: Mapping[str, Any],
    teams: Mapping[str, Any],
    htpasswd_users: Mapping[str, HtpasswdEntry],
) -> Iterator[Problem]:
    for section, names in (("users", users), ("service_accounts", services), ("teams", teams)):
        for name in names:
            if not is_account_name(name):
                yield Problem(f"{section}.{name}", "names use letters, digits, '.', '_', '@', '-'")
    for name in services:
        if name in users:
            yield Problem(f"service_accounts.{name}", f"{name!r} is also a user")
    for name in htpasswd_users:
        if name in users or name in services:
            yield Problem("htpasswd_file", f"user {name!r} is also declared in the config")


def _rule_problems(
    index: int,
    rule: Mapping[str, Any],
    users: set[str],
    services: set[str],
    teams: set[str],
    workloads: set[str],
) -> Iterator[Problem]:
    known = {"user": users, "service": services, "team": teams, "workload": workloads}
    for action in ("pull", "push", "delete"):
        principals = rule.get(action)
        if not isinstance(principals, list):
            continue
        for position, principal in enumerate(principals):
            where = f"repositories[{index}].{action}[{position}]"
            if principal == "authenticated":
                continue
            kind, sep, name = str(principal).partition(":")
            if not sep or kind not in PRINCIPAL_KINDS or not name:
                yield Problem(
                    where,
                    f"bad principal {principal!r}: expected user:NAME, team:NAME, "
                    "service:NAME, workload:NAME or authenticated",
                )
            elif name not in known[kind]:
                noun = {"user": "user", "service": "service account", "team": "team",
                        "workload": "workload (no federation entry)"}[kind]
                yield Problem(where, f"unknown {noun} {name!r}")


def external_names(data: Mapping[str, Any],
                   htpasswd_users: Mapping[str, HtpasswdEntry]) -> dict[str, list[str]]:
    """With `directory` or `sso`: the valid names that `user:` principals and team members give
    with no local account, each with where it appears (identities from outside the file: a
    warning, and what `check-config --probe` looks up). Without either: none. A name equal to a
    local account or federation entry case-insensitively stays an error: a login refuses it."""
    if not (isinstance(data.get("directory"), Mapping) or isinstance(data.get("sso"), Mapping)):
        return {}
    users, services = _mapping(data, "users"), _mapping(data, "service_accounts")
    taken = (*users, *services, *htpasswd_users, *federation_names(data))
    local = {name.casefold() for name in taken if isinstance(name, str)}
    found: dict[str, list[str]] = {}
    for team, spec in _mapping(data, "teams").items():
        members = spec.get("members") if isinstance(spec, Mapping) else None
        for index, member in enumerate(members if isinstance(members, list) else ()):
            if isinstance(member, str):
                found.setdefault(member, []).append(f"teams.{team}.members[{index}]")
    rules = data.get("repositories")
    for index, rule in enumerate(rules if isinstance(rules, list) else ()):
        for action in ("pull", "push", "delete"):
            principals = rule.get(action) if isinstance(rule, Mapping) else None
            for position, principal in enumerate(principals if isinstance(principals, list) else ()):
                kind, _, name = str(principal).partition(":")
                if kind == "user" and name:
                    found.setdefault(name, []).append(f"repositories[{index}].{action}[{position}]")
    return {name: where for name, where in found.items()
            if name.casefold() not in local and is_account_name(name)}


def external_name_warnings(data: Mapping[str, Any],
                           htpasswd_users: Mapping[str, HtpasswdEntry]) -> Iterator[Problem]:
    for name, places in external_names(data, htpasswd_users).items():
        for where in places:
            yield Problem(where, f"{name!r} is no local account: it must come from the directory "
                          "or single sign-on (check-config --probe looks it up)")


def federation_names(data: Mapping[str, Any]) -> set[str]:
    """The names of the `federation` entries: what `workload:NAME` principals may name."""
    entries = data.get("federation")
    if not isinstance(entries, list):
        return set()
    return {e["name"] for e in entries if isinstance(e, Mapping) and isinstance(e.get("name"), str)}


def weak_hash_warnings(
    hashes: Mapping[str, str], htpasswd_users: Mapping[str, HtpasswdEntry]
) -> Iterator[Problem]:
    """Low-cost bcrypt hashes check fast, which sets known users apart from unknown ones."""
    for location, password_hash in hashes.items():
        cost = bcrypt_cost(password_hash)
        if cost < LOW_BCRYPT_COST:
            yield Problem(
                f"{location}.password_hash",
                f"bcrypt cost {cost} is low (use >= {LOW_BCRYPT_COST}): fast checks tell known "
                "users from unknown ones by timing",
            )
    for name, entry in htpasswd_users.items():
        cost = bcrypt_cost(entry.password_hash)
        if cost < LOW_BCRYPT_COST and entry.refused is None:
            yield Problem(
                f"htpasswd_file:line {entry.line}",
                f"{name!r}: bcrypt cost {cost} is low (htpasswd -B defaults to 5; use -C 12)",
            )
