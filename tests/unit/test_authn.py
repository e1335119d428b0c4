"""Password checks: bcrypt only, unknown users cost the same, long passwords refused, cache."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import bcrypt
import pytest

from gateway.identity import passwords
from gateway.identity.failures import AuthFailure
from gateway.identity.passwords import CredentialCache, PasswordChecker
from gateway.policy.accounts import Account
from gateway.runtime.snapshot import dummy_hash

HASH = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=4))
LONG = "x" * 72
LONG_HASH = bcrypt.hashpw(LONG.encode(), bcrypt.gensalt(rounds=4))
ACCOUNTS = {
    "alice": Account("alice", "user", HASH),
    "long": Account("long", "user", LONG_HASH),
    "dave": Account("dave", "user", HASH, disabled=True),
    "bot": Account("bot", "service", HASH, expires=datetime.now(UTC) - timedelta(days=1)),
}
DUMMY = dummy_hash(4)


async def check(
    user: str,
    password: str,
    checker: PasswordChecker | None = None,
    fingerprint: str = "f1",
    accounts: dict[str, Account] = ACCOUNTS,
) -> Account | AuthFailure:
    checker = checker or PasswordChecker(CredentialCache(60))
    return await checker.check(accounts, fingerprint, DUMMY, user, password)


async def test_right_and_wrong_passwords() -> None:
    assert await check("alice", "right") == ACCOUNTS["alice"]
    assert await check("alice", "wrong") is AuthFailure.BAD_PASSWORD
    assert await check("nobody", "right") is AuthFailure.UNKNOWN_USER
    assert await check("dave", "right") is AuthFailure.DISABLED
    assert await check("dave", "wrong") is AuthFailure.BAD_PASSWORD
    assert await check("bot", "right") is AuthFailure.EXPIRED


async def test_a_name_without_a_hash_costs_the_dummy_check(monkeypatch: pytest.MonkeyPatch) -> None:
    # A refused htpasswd line is a local account with no hash: its check must do the same
    # bcrypt work as an unknown name's (bcrypt rejects an empty hash at once, a timing oracle).
    refused = {**ACCOUNTS, "ivan": Account("ivan", "user", b"", disabled=True)}
    hashes: list[bytes] = []
    real = passwords._checkpw

    def recording(password: bytes, password_hash: bytes) -> bool:
        hashes.append(password_hash)
        return real(password, password_hash)

    monkeypatch.setattr(passwords, "_checkpw", recording)
    assert await check("ivan", "anything", accounts=refused) is AuthFailure.BAD_PASSWORD
    assert await check("nobody", "anything", accounts=refused) is AuthFailure.UNKNOWN_USER
    assert hashes == [DUMMY, DUMMY]


async def test_password_over_72_bytes_is_refused_not_truncated() -> None:
    assert await check("long", LONG) == ACCOUNTS["long"]
    assert await check("long", LONG + "anything") is AuthFailure.BAD_PASSWORD
    assert await check("alice", "é" * 100) is AuthFailure.BAD_PASSWORD
    assert await check("alice", "\udcff") is AuthFailure.BAD_PASSWORD


async def test_cache_hits_and_invalidation() -> None:
    cache = CredentialCache(60)
    checker = PasswordChecker(cache)
    assert await check("alice", "right", checker) == ACCOUNTS["alice"]
    key = cache.key("f1", "alice", b"right")
    assert cache.hit(key, ACCOUNTS["alice"])
    # A changed password (new hash) or a new config fingerprint does not reuse the entry.
    changed = Account("alice", "user", bcrypt.hashpw(b"other", bcrypt.gensalt(rounds=4)))
    assert not cache.hit(key, changed)
    assert cache.key("f2", "alice", b"right") != key
    assert (
        await check("alice", "right", checker, accounts={**ACCOUNTS, "alice": changed})
        is AuthFailure.BAD_PASSWORD
    )
    # A disabled account is refused even with a cached success.
    await check("alice", "right", checker)
    disabled = {**ACCOUNTS, "alice": Account("alice", "user", HASH, disabled=True)}
    assert await check("alice", "right", checker, accounts=disabled) is AuthFailure.DISABLED


async def test_failures_are_never_cached() -> None:
    cache = CredentialCache(60)
    await check("alice", "wrong", PasswordChecker(cache))
    assert not cache.hit(cache.key("f1", "alice", b"wrong"), ACCOUNTS["alice"])


def test_cache_keys_do_not_contain_the_password() -> None:
    cache = CredentialCache(60)
    assert b"right" not in cache.key("f1", "alice", b"right")
