"""Local passwords: bcrypt off the event loop, the dummy check for unknown names, a short cache."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import bcrypt

from gateway.identity.credentials import BCRYPT_MAX_PASSWORD_BYTES
from gateway.identity.failures import AuthFailure, failure_for_state
from gateway.policy.accounts import Account
from gateway.state.ttlmap import TTLMap

MAX_REMEMBERED = 10_000


def _checkpw(password: bytes, password_hash: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, password_hash)
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class _Verified:
    account_hash: bytes


class CredentialCache:
    """Successful checks by HMAC(user, password), never the password; bounded, short-lived.

    Entries name the fingerprint of the config they were made under, so a reload drops them,
    and the account's hash, so a changed password does too.
    """

    def __init__(self, ttl: float, max_entries: int = MAX_REMEMBERED) -> None:
        self._ttl = ttl
        self._secret = secrets.token_bytes(32)
        self._entries: TTLMap[bytes, _Verified] = TTLMap(max_entries)

    def key(self, fingerprint: str, username: str, password: bytes) -> bytes:
        material = b"\0".join((fingerprint.encode(), username.encode(), password))
        return hmac.new(self._secret, material, hashlib.sha256).digest()

    def hit(self, key: bytes, account: Account) -> bool:
        entry = self._entries.get(key)
        if entry is None:
            return False
        if entry.account_hash != account.password_hash:
            self._entries.pop(key)
            return False
        return True

    def remember(self, key: bytes, account: Account) -> None:
        if self._ttl > 0:
            self._entries.put(key, _Verified(account.password_hash), self._ttl)


class PasswordChecker:
    """Turns (username, password) into an Account or the reason it failed."""

    def __init__(self, cache: CredentialCache) -> None:
        self._cache = cache

    async def check(
        self,
        accounts: Mapping[str, Account],
        fingerprint: str,
        dummy: bytes,
        username: str,
        password: str,
    ) -> Account | AuthFailure:
        account = accounts.get(username)
        secret = password.encode("utf-8", "surrogatepass")
        key = self._cache.key(fingerprint, username, secret)
        if account is not None and self._cache.hit(key, account):
            return state_failure(account) or account
        # A name with no hash (a refused htpasswd line) costs the dummy check like an unknown
        # one: bcrypt rejects an empty hash at once, and the time would tell those names apart.
        usable = account is not None and bool(account.password_hash)
        target = account.password_hash if account is not None and usable else dummy
        too_long = len(secret) > BCRYPT_MAX_PASSWORD_BYTES
        # bcrypt would silently ignore bytes past 72; such a password is refused, after the
        # same work as any other, so its answer looks like any wrong password's.
        matched = await asyncio.to_thread(_checkpw, secret[:BCRYPT_MAX_PASSWORD_BYTES], target)
        if account is None:
            return AuthFailure.UNKNOWN_USER
        if not (usable and matched) or too_long:
            return AuthFailure.BAD_PASSWORD
        failure = state_failure(account)
        if failure is None:
            self._cache.remember(key, account)
        return failure or account


def state_failure(account: Account) -> AuthFailure | None:
    return failure_for_state(account.state(datetime.now(UTC)))
