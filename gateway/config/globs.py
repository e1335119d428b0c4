"""Repository-name globs: `*` inside one path component, `**` for one or more components."""

from __future__ import annotations

import re

_COMPONENT = re.compile(r"[a-z0-9*]+(?:(?:\.|_|__|-+)[a-z0-9*]+)*|\*+", re.ASCII)


def glob_problem(pattern: str) -> str | None:
    """Why `pattern` is not a valid glob, or None when it is."""
    if not pattern:
        return "empty match"
    for component in pattern.split("/"):
        if "**" in component and component != "**":
            return f"bad glob {pattern!r}: '**' must be a whole path component"
        if component != "**" and not _COMPONENT.fullmatch(component):
            return (
                f"bad glob {pattern!r}: components are lowercase names "
                "(a-z, 0-9, '.', '_', '-') with '*' or a whole '**'"
            )
    if len(pattern) > 255:
        return f"bad glob {pattern!r}: longer than 255 characters"
    return None


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a valid glob to an anchored regex over the whole repository name."""
    parts = []
    for component in pattern.split("/"):
        if component == "**":
            parts.append(r"[^/]+(?:/[^/]+)*")
        else:
            parts.append("[^/]*".join(re.escape(piece) for piece in component.split("*")))
    return re.compile("/".join(parts), re.ASCII)


def literal_prefix(pattern: str) -> str:
    """The text before the first wildcard; every name the glob matches starts with it."""
    star = pattern.find("*")
    return pattern if star < 0 else pattern[:star]


def is_literal(pattern: str) -> bool:
    return "*" not in pattern
