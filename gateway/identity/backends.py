"""Identity backends: who a username and password belong to, behind one protocol.

The local accounts are asked first and decide alone for every name they hold; a name that is
not local goes to the first other backend that claims it (federation entries, SSO CLI passwords,
then the directory), and with none, costs the dummy bcrypt check and fails like a wrong password.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from gateway.config.schema import Settings
from gateway.identity.failures import AuthFailure
from gateway.identity.passwords import PasswordChecker
from gateway.policy.accounts import Account
from gateway.policy.subject import Subject, SubjectKind
from gateway.runtime.snapshot import Snapshot

# Where a password arrives: /token, Basic on /v2/, or the /ui/login form.
Door = Literal["token", "v2", "ui"]
ALL_DOORS: frozenset[Door] = frozenset(("token", "v2", "ui"))


class PasswordBackend(Protocol):
    """One source of identities. An error means "could not decide" (raise), never a grant."""

    def claims(self, snapshot: Snapshot, username: str, password: str) -> bool:
        """Whether this backend is the one to ask about `username` (cheap, no I/O)."""
        ...

    async def verify(self, snapshot: Snapshot, username: str,
                     password: str) -> Subject | AuthFailure: ...


class Rechecker(Protocol):
    """Checks again an identity a backend vouched for earlier (a refresh token, a UI session),
    from `subject.binding`: the identity as it is now, or why it is refused. Raise
    IdentityUnavailable when it cannot tell."""

    async def recheck(self, snapshot: Snapshot, subject: Subject) -> Subject | AuthFailure: ...


@dataclass(frozen=True)
class Mounted:
    """A backend asked only at some doors (federation at /token alone, CLI passwords not at
    /ui/login); a plain backend is asked at every door."""

    backend: PasswordBackend
    doors: frozenset[Door] = ALL_DOORS


def source_configured(settings: Settings, subject: Subject) -> bool:
    """Whether the config still has the source of a non-local identity: a token or session of
    a federation entry, `sso` or `directory` that was removed since dies with it."""
    if subject.kind == "workload":
        return any(entry.name == subject.name for entry in settings.federation)
    if subject.kind == "sso":
        return settings.sso is not None
    if subject.kind == "directory":
        return settings.directory is not None
    return True


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

    def __init__(self, local: LocalAccounts, others: Sequence[PasswordBackend | Mounted] = (),
                 rechecks: Mapping[SubjectKind, Rechecker] | None = None) -> None:
        self.local = local
        self._others = tuple(o if isinstance(o, Mounted) else Mounted(o) for o in others)
        self._rechecks = dict(rechecks or {})

    async def verify(self, snapshot: Snapshot, username: str, password: str,
                     door: Door = "token") -> Subject | AuthFailure:
        if not self.local.claims(snapshot, username, password):
            for mounted in self._others:
                if door in mounted.doors and mounted.backend.claims(snapshot, username, password):
                    return await mounted.backend.verify(snapshot, username, password)
        # Local, or nobody's: an unknown name costs the same dummy bcrypt check.
        return await self.local.verify(snapshot, username, password)

    async def recheck(self, snapshot: Snapshot, subject: Subject) -> Subject | AuthFailure:
        """A non-local identity checked again by the backend of its kind (none: refused)."""
        checker = self._rechecks.get(subject.kind)
        if checker is None or not source_configured(snapshot.settings, subject):
            return AuthFailure.BAD_TOKEN
        return await checker.recheck(snapshot, subject)
