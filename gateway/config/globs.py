"""Repository-name globs: `*` inside one path component, `**` for one or more components, and
`{user}` (a whole component, never the first) for the caller's own name."""

from __future__ import annotations

import re

USER = "{user}"
_COMPONENT = re.compile(r"[a-z0-9*]+(?:(?:\.|_|__|-+)[a-z0-9*]+)*|\*+", re.ASCII)


def glob_problem(pattern: str) -> str | None:
    """Why `pattern` is not a valid glob, or None when it is."""
    if not pattern:
        return "empty match"
    for position, component in enumerate(pattern.split("/")):
        problem = _component_problem(pattern, position, component)
        if problem:
            return problem
    if len(pattern) > 255:
        return f"bad glob {pattern!r}: longer than 255 characters"
    return None


def _component_problem(pattern: str, position: int, component: str) -> str | None:
    if component == USER:
        if position == 0:
            return (f"bad glob {pattern!r}: '{{user}}' cannot be the first path component "
                    "(write e.g. 'home/{user}/**')")
        return None
    if "{" in component or "}" in component:
        if USER in component:
            return f"bad glob {pattern!r}: '{{user}}' must be a whole path component"
        return f"bad glob {pattern!r}: the only placeholder is '{{user}}', a whole path component"
    if "**" in component and component != "**":
        return f"bad glob {pattern!r}: '**' must be a whole path component"
    if component != "**" and not _COMPONENT.fullmatch(component):
        return (
            f"bad glob {pattern!r}: components are lowercase names "
            "(a-z, 0-9, '.', '_', '-') with '*' or a whole '**', or '{user}'"
        )
    return None


def is_templated(pattern: str) -> bool:
    """Whether the glob names `{user}`: it then matches differently for each caller."""
    return USER in pattern.split("/")


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a valid glob to an anchored regex over the whole repository name.

    Each `{user}` becomes one component captured as group `user` (later ones must repeat it);
    the caller compares it with its own name, so no name is ever spliced into a regex.
    """
    parts = []
    captured = False
    for component in pattern.split("/"):
        if component == USER:
            parts.append("(?P=user)" if captured else "(?P<user>[^/]+)")
            captured = True
        elif component == "**":
            parts.append(r"[^/]+(?:/[^/]+)*")
        else:
            parts.append("[^/]*".join(re.escape(piece) for piece in component.split("*")))
    return re.compile("/".join(parts), re.ASCII)


def personal(pattern: str, user: str) -> str:
    """`pattern` with every `{user}` replaced by `user` (a valid path component)."""
    return "/".join(user if c == USER else c for c in pattern.split("/"))


def literal_prefix(pattern: str) -> str:
    """The text before the first wildcard; every name the glob matches starts with it.

    For a templated glob, substitute the caller first (`personal`): `{user}` is a wildcard here.
    """
    cut = min((i for i in (pattern.find("*"), pattern.find("{")) if i >= 0), default=-1)
    return pattern if cut < 0 else pattern[:cut]


def is_literal(pattern: str) -> bool:
    return "*" not in pattern and "{" not in pattern
