"""The directory (LDAP) as an identity backend: every non-local, non-federation name.

A login is find_user then a bind as the user found (or the dummy bind when none is), and always
the local dummy bcrypt check too, so neither the time taken nor the directory operations tell
which names exist. A name the directory returns that equals a local account or a federation
entry case-insensitively, or is not a valid account name, is refused: it could otherwise reach
rules written for someone else. A directory that does not answer is IdentityUnavailable (503),
except for a name remembered with other credentials: that password is as wrong as ever (401).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from gateway.config.htpasswd import is_account_name
from gateway.config.identity_schema import DirectorySettings
from gateway.config.schema import Settings
from gateway.identity.backends import LocalAccounts
from gateway.identity.failures import AuthFailure, IdentityUnavailable
from gateway.identity.ldap_client import (
    DirectoryClient,
    DirectoryClientSettings,
    DirectoryUnavailable,
    DirectoryUser,
)
from gateway.metrics import Metrics
from gateway.policy.subject import Subject
from gateway.runtime.snapshot import Snapshot
from gateway.state.identities import IdentityMemory, remembered

log = logging.getLogger("registry_gateway.directory")
T = TypeVar("T")


def client_settings(directory: DirectorySettings, bind_password: str) -> DirectoryClientSettings:
    return DirectoryClientSettings(
        urls=directory.url, start_tls=directory.start_tls, ca_file=directory.ca_file,
        bind_dn=directory.bind_dn, bind_password=bind_password, user_base=directory.user_base,
        username_attribute=directory.username_attribute, user_filter=directory.user_filter,
        group_base=directory.group_base, group_filter=directory.group_filter,
        group_name_attribute=directory.group_name_attribute, timeout=directory.timeout)


def generation_of(directory: DirectorySettings | None) -> str:
    """A hash of the settings that decide who a directory login is (file paths left out, so
    replicas with the same settings agree; a rotated bind password forgets nobody)."""
    if directory is None:
        return ""
    fields = directory.model_dump(mode="json", exclude={"bind_password_file", "ca_file"})
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class _Current:
    settings: DirectoryClientSettings
    client: DirectoryClient


class DirectoryClients:
    """The one DirectoryClient of the running config; rebuilt when `directory` or the content of
    its bind_password_file changes (read at start and on each reload, never logged)."""

    def __init__(self) -> None:
        self._current: _Current | None = None
        # Part of remembered identities' keys: a change of `directory` forgets them all, on
        # every replica that runs the same settings.
        self.generation = generation_of(None)
        self._retired: set[asyncio.Task[None]] = set()

    @property
    def client(self) -> DirectoryClient | None:
        return self._current.client if self._current else None

    def configure(self, settings: Settings) -> None:
        self.generation = generation_of(settings.directory)
        wanted = None
        if settings.directory is not None:
            try:
                password = settings.directory.bind_password_file.read_text("utf-8").strip()
            except OSError as exc:  # the old client stays: a reload must not break logins
                log.warning("directory: cannot read bind_password_file (%s): kept the previous "
                            "client", type(exc).__name__)
                return
            wanted = client_settings(settings.directory, password)
        if self._current is not None and self._current.settings == wanted:
            return
        old, self._current = self._current, None
        if wanted is not None:
            self._current = _Current(wanted, DirectoryClient(wanted))
        if old is not None:
            self._retire(old.client)

    def _retire(self, client: DirectoryClient) -> None:
        try:
            task = asyncio.get_running_loop().create_task(client.close())
        except RuntimeError:  # no loop (configured before start): nothing opened yet
            asyncio.run(client.close())
            return
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    async def close(self) -> None:
        current, self._current = self._current, None
        if current is not None:
            await current.client.close()
        if self._retired:
            await asyncio.gather(*self._retired)


def access_ttl(settings: Settings, subject: Subject | None) -> int | None:
    """How long an access token may live for this subject (None: the configured ttl): a
    directory identity at most cache_ttl, so a group change reaches it within that."""
    if subject is None or subject.kind != "directory" or settings.directory is None:
        return None
    return max(1, settings.directory.cache_ttl)


def _binding(user: DirectoryUser) -> str:
    # What a refresh token carries: the password-change time where the directory has one.
    return "pwd:" + (user.password_changed or "")


def refused_name(snapshot: Snapshot, name: str) -> bool:
    """A directory name that must not become a subject: another identity's name, or invalid."""
    return not is_account_name(name) or name.casefold() in snapshot.taken_names


class DirectoryLogins:
    """The PasswordBackend for the directory (asked after federation and CLI passwords)."""

    def __init__(self, clients: DirectoryClients, local: LocalAccounts, metrics: Metrics,
                 memory: IdentityMemory) -> None:
        self._clients = clients
        self._memory = memory
        self._local = local
        self._requests = metrics.directory_requests

    async def _count(self, operation: str, call: Awaitable[T]) -> T:
        """registry_gateway_directory_requests_total{operation,result} around one call."""
        try:
            result = await call
        except DirectoryUnavailable as exc:
            timed_out = any(word in str(exc) for word in ("no answer within", "timed out", "timeout"))
            self._requests.labels(operation, "timeout" if timed_out else "error").inc()
            raise
        self._requests.labels(operation, "ok").inc()
        return result

    def claims(self, snapshot: Snapshot, username: str, password: str) -> bool:
        return snapshot.settings.directory is not None and not any(
            entry.name == username for entry in snapshot.settings.federation)

    async def verify(self, snapshot: Snapshot, username: str,
                     password: str) -> Subject | AuthFailure:
        directory, client = snapshot.settings.directory, self._clients.client
        if directory is None or client is None:  # `directory` removed since claims()
            return AuthFailure.UNKNOWN_USER
        generation, ttl = self._clients.generation, directory.cache_ttl
        hit = await self._memory.recall(generation, username, password, ttl) if password else None
        if hit is not None and not refused_name(snapshot, hit.name):
            return Subject(hit.name, "directory", hit.groups, binding=hit.binding)
        # The dummy bcrypt check a name no one holds costs (the name is not local).
        await self._local.check(snapshot, username, password)
        if not password:
            return AuthFailure.BAD_PASSWORD
        try:
            user = await self._bound_user(client, username, password)
            if isinstance(user, AuthFailure):
                return user
            if refused_name(snapshot, user.name):
                log.info("directory: a returned name is refused (taken or invalid)")
                return AuthFailure.UNKNOWN_USER
            groups = await self._count("groups", client.groups_of(user.dn))
        except DirectoryUnavailable as exc:
            if await self._memory.known(generation, username, ttl) is not None:
                # Remembered, but not with this password: as wrong as with the directory up.
                return AuthFailure.BAD_PASSWORD
            log.warning("directory unavailable (%s): login refused with 503", exc)
            raise IdentityUnavailable("directory", "unreachable") from None
        identity = remembered(user.name, groups, _binding(user))
        await self._memory.remember(generation, username, password, identity, ttl)
        return Subject(user.name, "directory", groups, binding=identity.binding)

    async def recheck(self, snapshot: Snapshot, subject: Subject) -> Subject | AuthFailure:
        """A refresh token's identity as the directory has it now: still found by the search
        account (the user filter excludes disabled accounts), same password-change time, the
        groups read again."""
        client = self._clients.client
        if client is None:
            return AuthFailure.BAD_TOKEN
        try:
            user = await self._count("search", client.find_user(subject.name))
            if user is None or user.name != subject.name or refused_name(snapshot, user.name):
                return AuthFailure.UNKNOWN_USER
            if _binding(user) != subject.binding:  # the password was changed since
                return AuthFailure.BAD_TOKEN
            groups = await self._count("groups", client.groups_of(user.dn))
        except DirectoryUnavailable as exc:
            log.warning("directory unavailable (%s): refresh refused with 503", exc)
            raise IdentityUnavailable("directory", "unreachable") from None
        return Subject(user.name, "directory", groups, binding=_binding(user))

    async def _bound_user(self, client: DirectoryClient, username: str,
                          password: str) -> DirectoryUser | AuthFailure:
        user = await self._count("search", client.find_user(username))
        if user is None:
            await self._count("bind", client.dummy_bind(password))
            return AuthFailure.UNKNOWN_USER
        if not await self._count("bind", client.check_password(user.dn, password)):
            return AuthFailure.BAD_PASSWORD
        return user

