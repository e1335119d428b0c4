"""Parse htpasswd files; only bcrypt lines are accepted, the others are refused line by line.

A refused line (apr1, SHA, crypt, plain: the nginx recipe's `htpasswd -m`) is a warning, never
an invalid file; its name stays a local account that cannot log in, so it never falls through
to a directory and a team naming it is still valid.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.config.problems import Problem

BCRYPT_HASH = re.compile(r"\$2[aby]?\$(\d\d)\$[./A-Za-z0-9]{53}", re.ASCII)
DEFAULT_BCRYPT_COST = 12  # what hash-password makes, and the dummy check's cost without accounts
REFUSED_NOTE = "only bcrypt hashes are accepted (htpasswd -B)"  # marks a refused line
ACCOUNT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}", re.ASCII)


@dataclass(frozen=True)
class HtpasswdEntry:
    name: str
    password_hash: str = field(repr=False)
    line: int
    refused: str | None = None  # why this line's hash is not taken; None: a bcrypt line


def is_account_name(name: object) -> bool:
    return isinstance(name, str) and ACCOUNT_NAME.fullmatch(name) is not None


def bcrypt_cost(password_hash: str) -> int:
    match = BCRYPT_HASH.fullmatch(password_hash)
    return int(match.group(1)) if match else 0


def _kind(hashed: str) -> str:
    for prefix, kind in (("$apr1$", "apr1 (MD5)"), ("{SHA}", "SHA-1"), ("$1$", "MD5-crypt"),
                         ("$5$", "SHA-256-crypt"), ("$6$", "SHA-512-crypt")):
        if hashed.startswith(prefix):
            return kind
    return "crypt or plain-text"


def refused_line_warnings(entries: Mapping[str, HtpasswdEntry]) -> list[Problem]:
    """One warning per refused line: which line, whose, why, and what to use instead."""
    return [Problem(f"htpasswd_file:line {e.line}",
                    f"{e.name!r}: {e.refused} ignored, {REFUSED_NOTE}; this user cannot log in "
                    "until the line is re-hashed")
            for e in entries.values() if e.refused is not None]


def parse_htpasswd(text: str) -> tuple[dict[str, HtpasswdEntry], list[Problem]]:
    entries: dict[str, HtpasswdEntry] = {}
    problems: list[Problem] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, hashed = line.partition(":")
        where = f"line {number}"
        if not sep or not is_account_name(name):
            problems.append(Problem(where, "expected 'name:bcrypt-hash'"))
        elif name in entries:
            problems.append(Problem(where, f"duplicate user {name!r}"))
        elif not BCRYPT_HASH.fullmatch(hashed):
            entries[name] = HtpasswdEntry(name, "", number, refused=f"{_kind(hashed)} hash")
        else:
            entries[name] = HtpasswdEntry(name, hashed, number)
    return entries, problems
