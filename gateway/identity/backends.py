"""Identity backends: who a username and password belong to, behind one protocol.

The local accounts are asked first and decide alone for every name they hold; a name that is
not local goes to the first other backend that claims it (federation entries, SSO CLI passwords,
then the directory), and with none, costs the dummy bcrypt check and fails like a wrong password.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from gateway.identity.failures import AuthFailure
from gateway.identity.passwords import PasswordChecker
from gateway.policy.accounts import Account
from gateway.policy.subject import Subject
from gateway.runtime.snapshot import Snapshot


class PasswordBackend(Protocol):
    """One source of identities. An error means "could not decide" (raise), never a grant."""

    def claims(self, snapshot: Snapshot, username: str, password: str) -> bool:
        """Whether this backend is the one to ask about `username` (cheap, no I/O)."""
        ...

    async def verify(self, snapshot: Snapshot, username: str,
                     password: str) -> Subject | AuthFailure: ...


class LocalAccounts:
    """`users`, `service_accounts` and the htpasswd file of the running config."""

    def __init__(self, passwords: PasswordChecker) -> None:
        self._passwords = passwords

    def claims(self, snapshot: Snapshot, username: str, password: str) -> bool:
        return username in snapshot.policy.accounts

    async def check(self, snapshot: Snapshot, username: str, password: str) -> Account | AuthFailure:
        return await self._passwords.check(snapshot.policy.accounts, snapshot.fingerprint,
                                           snapshot.dummy_hash, username, password)

    async def verify(self, snapshot: Snapshot, username: str,
                     password: str) -> Subject | AuthFailure:
        result = await self.check(snapshot, username, password)
        return result if isinstance(result, AuthFailure) else Subject(result.name, result.kind)


class IdentityBackends:
    """The lookup order: local accounts, then the others in order, then nobody."""

    def __init__(self, local: LocalAccounts, others: Sequence[PasswordBackend] = ()) -> None:
        self.local = local
        self._others = tuple(others)

    async def verify(self, snapshot: Snapshot, username: str,
                     password: str) -> Subject | AuthFailure:
        if not self.local.claims(snapshot, username, password):
            for backend in self._others:
                if backend.claims(snapshot, username, password):
                    return await backend.verify(snapshot, username, password)
        # Local, or nobody's: an unknown name costs the same dummy bcrypt check.
        return await self.local.verify(snapshot, username, password)
