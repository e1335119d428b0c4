"""Passwords to accounts: bcrypt off the event loop, a dummy check for unknown users, a cache."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

import bcrypt

from gateway.accounts import Account, AccountState
from gateway.credentials import BCRYPT_MAX_PASSWORD_BYTES


class AuthFailure(Enum):
    """Why authentication failed; a metric label, never shown to the client."""

    BAD_PASSWORD = "bad_password"  # noqa: S105 - a metric label
    UNKNOWN_USER = "unknown_user"
    DISABLED = "disabled"
    EXPIRED = "expired"
    LOCKED_OUT = "locked_out"
    MALFORMED = "malformed"
    BAD_TOKEN = "bad_token"  # noqa: S105 - a metric label
    INSECURE_TRANSPORT = "insecure_transport"


def dummy_hash(cost: int) -> bytes:
    """A hash no password matches, of the accounts' cost, so unknown users take as long."""
    return bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=cost))


def _checkpw(password: bytes, password_hash: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, password_hash)
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class _Verified:
    account_hash: bytes
    until: float


class CredentialCache:
    """Successful checks by HMAC(user, password), never the password; bounded, short-lived.

    Entries name the fingerprint of the config they were made under, so a reload drops them,
    and the account's hash, so a changed password does too.
    """

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._secret = secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, _Verified] = OrderedDict()

    def key(self, fingerprint: str, username: str, password: bytes) -> bytes:
        material = b"\0".join((fingerprint.encode(), username.encode(), password))
        return hmac.new(self._secret, material, hashlib.sha256).digest()

    def hit(self, key: bytes, account: Account) -> bool:
        entry = self._entries.get(key)
        if entry is None:
            return False
        if entry.until < time.monotonic() or entry.account_hash != account.password_hash:
            del self._entries[key]
            return False
        return True

    def remember(self, key: bytes, account: Account) -> None:
        if self._ttl <= 0:
            return
        self._entries[key] = _Verified(account.password_hash, time.monotonic() + self._ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)


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
            return _state_failure(account) or account
        target = account.password_hash if account is not None else dummy
        too_long = len(secret) > BCRYPT_MAX_PASSWORD_BYTES
        # bcrypt would silently ignore bytes past 72; such a password is refused, after the
        # same work as any other, so its answer looks like any wrong password's.
        matched = await asyncio.to_thread(_checkpw, secret[:BCRYPT_MAX_PASSWORD_BYTES], target)
        if account is None:
            return AuthFailure.UNKNOWN_USER
        if not matched or too_long:
            return AuthFailure.BAD_PASSWORD
        failure = _state_failure(account)
        if failure is None:
            self._cache.remember(key, account)
        return failure or account


def _state_failure(account: Account) -> AuthFailure | None:
    state = account.state(datetime.now(UTC))
    if state is AccountState.DISABLED:
        return AuthFailure.DISABLED
    if state is AccountState.EXPIRED:
        return AuthFailure.EXPIRED
    return None
