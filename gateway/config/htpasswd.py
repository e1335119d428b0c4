"""Parse htpasswd files; only bcrypt lines are accepted."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gateway.config.problems import Problem

BCRYPT_HASH = re.compile(r"\$2[aby]?\$(\d\d)\$[./A-Za-z0-9]{53}", re.ASCII)
DEFAULT_BCRYPT_COST = 12  # what hash-password makes, and the dummy check's cost without accounts
ACCOUNT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}", re.ASCII)


@dataclass(frozen=True)
class HtpasswdEntry:
    name: str
    password_hash: str = field(repr=False)
    line: int


def is_account_name(name: object) -> bool:
    return isinstance(name, str) and ACCOUNT_NAME.fullmatch(name) is not None


def bcrypt_cost(password_hash: str) -> int:
    match = BCRYPT_HASH.fullmatch(password_hash)
    return int(match.group(1)) if match else 0


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
        elif not BCRYPT_HASH.fullmatch(hashed):
            problems.append(Problem(where, f"{name!r}: only bcrypt hashes are accepted (htpasswd -B)"))
        elif name in entries:
            problems.append(Problem(where, f"duplicate user {name!r}"))
        else:
            entries[name] = HtpasswdEntry(name, hashed, number)
    return entries, problems
