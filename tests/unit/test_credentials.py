"""Authorization header parsing never raises and never keeps secrets in reprs."""

from __future__ import annotations

import base64

import pytest

from gateway.credentials import (
    BasicCredentials,
    BearerCredentials,
    MalformedCredentials,
    NoCredentials,
    parse_authorization,
)


def basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


def test_basic() -> None:
    assert parse_authorization(basic("alice:pa:ss")) == BasicCredentials("alice", "pa:ss")
    assert parse_authorization("basic " + basic("a:b")[6:]) == BasicCredentials("a", "b")


def test_bearer_and_none() -> None:
    assert parse_authorization("Bearer abc.def") == BearerCredentials("abc.def")
    assert parse_authorization(None) == NoCredentials()


@pytest.mark.parametrize(
    "header",
    [
        "Basic",
        "Basic !!!",
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
        basic("no-colon"),
        basic(":password"),
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
