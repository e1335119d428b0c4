"""Parse the Authorization header; malformed input is a value, never an exception."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

BCRYPT_MAX_PASSWORD_BYTES = 72


@dataclass(frozen=True, slots=True)
class NoCredentials:
    pass


@dataclass(frozen=True, slots=True)
class BasicCredentials:
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class BearerCredentials:
    token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class MalformedCredentials:
    scheme: str


Credentials = NoCredentials | BasicCredentials | BearerCredentials | MalformedCredentials


def parse_authorization(header: str | None) -> Credentials:
    if header is None:
        return NoCredentials()
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    lowered = scheme.lower()
    if lowered == "basic":
        return _parse_basic(value)
    if lowered == "bearer":
        if not value or " " in value or not value.isascii():
            return MalformedCredentials("bearer")
        return BearerCredentials(value)
    return MalformedCredentials("other")


def _parse_basic(value: str) -> Credentials:
    try:
        decoded = base64.b64decode(value.encode("ascii"), validate=True).decode("utf-8")
    except (UnicodeError, binascii.Error, ValueError):
        return MalformedCredentials("basic")
    username, sep, password = decoded.partition(":")
    if not sep or not username:
        return MalformedCredentials("basic")
    return BasicCredentials(username, password)
