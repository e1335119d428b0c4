"""Authorization header parsing never raises and never keeps secrets in reprs."""

from __future__ import annotations

import base64

import pytest

from gateway.identity.credentials import (
    BasicCredentials,
    BearerCredentials,
    MalformedCredentials,
    NoCredentials,
    parse_authorization,
)


def encoded_basic(text: str) -> str:
    """Any text as a Basic value, colon or not (support.credentials.basic always has one)."""
    return "Basic " + base64.b64encode(text.encode()).decode()


def test_basic() -> None:
    assert parse_authorization(encoded_basic("alice:pa:ss")) == BasicCredentials("alice", "pa:ss")
    assert parse_authorization("basic " + encoded_basic("a:b")[6:]) == BasicCredentials("a", "b")


def test_bearer_and_none() -> None:
    assert parse_authorization("Bearer abc.def") == BearerCredentials("abc.def")
    assert parse_authorization(None) == NoCredentials()


@pytest.mark.parametrize(
    "header",
    [
        "Basic",
        "Basic !!!",
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
        encoded_basic("no-colon"),
        encoded_basic(":password"),
        "Bearer",
        "Bearer a b",
        "Bearer tøken",
        "Digest x",
        "",
        "   ",
    ],
)
def test_malformed(header: str) -> None:
    assert isinstance(parse_authorization(header), MalformedCredentials)


def test_reprs_hide_secrets() -> None:
    assert "s3cret" not in repr(BasicCredentials("alice", "s3cret"))
    assert "tok" not in repr(BearerCredentials("tok"))
