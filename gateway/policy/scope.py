"""Token scope strings: `repository:team/app:pull,push`, several separated by spaces."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.policy.actions import ACTIONS, Action
from gateway.policy.names import valid_name

MAX_SCOPES = 32


@dataclass(frozen=True, slots=True)
class RepositoryScope:
    name: str
    actions: frozenset[Action]

    def format(self) -> str:
        return f"repository:{self.name}:{','.join(a for a in ACTIONS if a in self.actions)}"


@dataclass(frozen=True, slots=True)
class ParsedScopes:
    repositories: tuple[RepositoryScope, ...]
    catalog: bool


def parse_scopes(values: list[str]) -> ParsedScopes:
    """Parse every requested scope; what is malformed or unknown is dropped, never an error.

    Type is the text up to the first ':', actions after the last ':', the name in between
    (it may hold a registry host's ':port'). `*` means every action.
    """
    wanted: dict[str, set[Action]] = {}
    catalog = False
    items = [item for value in values for item in value.split(" ") if item]
    for item in items[:MAX_SCOPES]:
        rtype, sep, rest = item.partition(":")
        name, sep2, actions_text = rest.rpartition(":")
        if not sep or not sep2:
            continue
        requested = set(actions_text.split(","))
        if rtype == "registry" and name == "catalog":
            catalog = catalog or "*" in requested
            continue
        if rtype not in ("repository", "repository(plugin)") or not valid_name(name):
            continue
        actions: set[Action] = set(ACTIONS) if "*" in requested else {
            a for a in ACTIONS if a in requested
        }
        wanted.setdefault(name, set()).update(actions)
    return ParsedScopes(
        tuple(RepositoryScope(name, frozenset(acts)) for name, acts in wanted.items()),
        catalog,
    )
