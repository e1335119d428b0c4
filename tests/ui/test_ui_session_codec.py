"""The session cookie and CSRF token codec, without a browser (unit tests: no I/O)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.ui.session import Revocations, SessionCodec, load_secret, new_csrf_cookie

HASH = b"$2b$04$abcdefghijklmnopqrstuuJ1x2Qk0cM2bQ0x6cQyq0m3bS5d4k1a"
NOW = 1_800_000_000.0


@pytest.fixture
def codec() -> SessionCodec:
    return SessionCodec(b"s" * 32)


def test_issued_cookie_verifies_until_it_expires(codec: SessionCodec) -> None:
    cookie, session = codec.issue("alice", HASH, 600, now=NOW)
    assert codec.verify(cookie, HASH, now=NOW + 599) == session
    assert session.subject == "alice" and session.expires == int(NOW) + 600
    assert codec.verify(cookie, HASH, now=NOW + 600) is None
    assert "alice-secret" not in cookie and HASH.decode() not in cookie


def test_changed_password_hash_ends_the_session(codec: SessionCodec) -> None:
    cookie, _ = codec.issue("alice", HASH, 600, now=NOW)
    assert codec.verify(cookie, HASH.replace(b"a", b"b"), now=NOW) is None


@pytest.mark.parametrize("mangle", [
    lambda c: c + "x",
    lambda c: "x" + c,
    lambda c: c.replace(".", ""),
    lambda c: c.partition(".")[0] + ".",
    lambda c: "e30." + c.partition(".")[2],  # "{}"
    lambda c: "A" * 2000,
    lambda c: "",
])
def test_tampered_cookies_are_refused(codec: SessionCodec, mangle: object) -> None:
    cookie, _ = codec.issue("alice", HASH, 600, now=NOW)
    assert callable(mangle)
    assert codec.verify(mangle(cookie), HASH, now=NOW) is None


def test_another_secret_does_not_verify(codec: SessionCodec) -> None:
    cookie, _ = codec.issue("alice", HASH, 600, now=NOW)
    assert SessionCodec(b"t" * 32).verify(cookie, HASH, now=NOW) is None


def test_csrf_token_is_bound_to_cookie_and_session(codec: SessionCodec) -> None:
    browser = new_csrf_cookie()
    token = codec.csrf_token(browser, "sid-1")
    assert codec.csrf_ok(token, browser, "sid-1")
    assert not codec.csrf_ok(token, browser, "sid-2")
    assert not codec.csrf_ok(token, new_csrf_cookie(), "sid-1")
    assert not codec.csrf_ok("", browser, "sid-1")
    assert not codec.csrf_ok(token, "", "sid-1")


def test_revocations_forget_what_has_expired_anyway(codec: SessionCodec) -> None:
    revocations = Revocations(max_entries=2)
    _, first = codec.issue("alice", HASH, 10, now=NOW)
    _, second = codec.issue("bob", HASH, 100, now=NOW)
    revocations.revoke(first)
    revocations.revoke(second)
    assert revocations.revoked(first, now=NOW) and revocations.revoked(second, now=NOW)
    assert not revocations.revoked(first, now=NOW + 50)
    assert revocations.revoked(second, now=NOW + 50)


def test_secret_file_must_be_long_enough(tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_text("too short\n")
    with pytest.raises(ValueError, match="at least 32 bytes"):
        load_secret(short)
    good = tmp_path / "good.key"
    good.write_text("k" * 40 + "\n")
    assert load_secret(good) == b"k" * 40
    assert len(load_secret(None)) == 32 and load_secret(None) != load_secret(None)
