"""An async directory (LDAP) client for logins: find a user, check a password, read groups.

ldap3 (synchronous) runs in two thread pools of the client's own, so the event loop never waits
on the directory: searches on up to ``pool_size`` reused connections bound as the search
account, and password checks, each a bind on a fresh connection. bonsai (native asyncio) was not
taken: its ldaps:// connect to a server that accepts and never answers blocks the event loop
(bench/bench_ldap_clients.py). Passwords go only over ldaps:// or StartTLS, except to loopback,
and never into an exception, a repr or a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from gateway.config.identity_checks import directory_url_problems, is_loopback_host
from gateway.identity.ldap_filters import group_search_filter, user_search_filter

with warnings.catch_warnings():
    # ldap3 2.9.1 imports names that pyasn1 0.6 deprecated (tagMap, typeMap).
    warnings.simplefilter("ignore", DeprecationWarning)
    import ldap3
    from ldap3.core import exceptions as ldap_errors
    from ldap3.core.exceptions import LDAPCommunicationError

T = TypeVar("T")
DOWN_FOR = 30.0  # seconds a server that failed to connect goes to the end of the URL list
_REFUSED = frozenset({48, 49, 50, 53})  # bind results that mean "not these credentials"
_PASSWORD_CHANGED = ("pwdChangedTime", "pwdLastSet")  # OpenLDAP ppolicy, Active Directory


class DirectoryUnavailable(Exception):
    """The directory did not answer: unreachable, too slow, or the search account was refused."""


@dataclass(frozen=True)
class DirectoryClientSettings:
    urls: tuple[str, ...]
    start_tls: bool
    ca_file: Path | None
    bind_dn: str
    bind_password: str = field(repr=False)
    user_base: str
    username_attribute: str
    user_filter: str
    group_base: str
    group_filter: str
    group_name_attribute: str
    timeout: float
    pool_size: int = 4


@dataclass(frozen=True)
class DirectoryUser:
    dn: str
    name: str  # the username attribute's value as the directory returned it
    password_changed: str | None  # pwdChangedTime (generalized time) or pwdLastSet (AD)


class _Tls(ldap3.Tls):
    """The stdlib's host name check (ldap3's uses the deprecated, IP-less ssl.match_hostname)."""

    def __init__(self, host: str, ca_file: Path | None) -> None:
        super().__init__(validate=ssl.CERT_REQUIRED)
        self._host = host
        self._context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self._context.minimum_version = ssl.TLSVersion.TLSv1_2

    def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:
        # ldap3 leaves Nagle on: a bind in two TLS records then waits out the delayed ACK (40 ms).
        connection.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection.socket = self._context.wrap_socket(
            connection.socket, server_hostname=self._host, do_handshake_on_connect=do_handshake)


class DirectoryClient:
    """The public methods are coroutines; the private ones after ``_run`` run in the threads."""
    def __init__(self, settings: DirectoryClientSettings) -> None:
        if problems := directory_url_problems(settings.urls, settings.start_tls):
            raise ValueError("; ".join(problems))
        self._settings = settings
        self._down_until: dict[str, float] = {}  # single dict operations: no lock needed
        self._idle: list[ldap3.Connection] = []
        self._lock, self._capacity = threading.Lock(), settings.pool_size  # capacity 0: closed
        self._searches = ThreadPoolExecutor(settings.pool_size, thread_name_prefix="ldap-search")
        self._binds = ThreadPoolExecutor(settings.pool_size, thread_name_prefix="ldap-bind")
        self._dummy_dn = f"cn=no-such-user-{secrets.token_hex(8)},{settings.user_base}"  # see dummy_bind

    async def find_user(self, username: str) -> DirectoryUser | None:
        """The one entry with this username under user_base (searched as the bind account)."""
        s = self._settings
        if not username:
            return None
        query = user_search_filter(s.user_filter, s.username_attribute, username)
        attributes = [s.username_attribute, *_PASSWORD_CHANGED]
        entries = await self._run(self._searches, self._search, s.user_base, query, attributes, 2)
        if len(entries) != 1:
            return None  # none, or two: never pick one of two accounts
        dn, values = entries[0]
        names = values.get(s.username_attribute.lower(), [])
        name = names[0] if len(names) == 1 else next(
            (n for n in names if n.casefold() == username.casefold()), None)
        changed = next((values[a.lower()][0] for a in _PASSWORD_CHANGED if values.get(a.lower())), None)
        return DirectoryUser(dn, name, changed) if name is not None else None

    async def check_password(self, dn: str, password: str) -> bool:
        """Bind as ``dn`` on a fresh connection; an empty password or DN never reaches a bind."""
        if not password or not dn.strip():
            return False
        return await self._run(self._binds, self._bind_as, dn, password)

    async def dummy_bind(self, password: str) -> None:
        """The bind an unknown user would have cost, against a DN that does not exist."""
        if password:
            await self._run(self._binds, self._bind_as, self._dummy_dn, password)

    async def groups_of(self, dn: str) -> frozenset[str]:
        s = self._settings
        query = group_search_filter(s.group_filter, dn)
        entries = await self._run(
            self._searches, self._search, s.group_base, query, [s.group_name_attribute], 1000)
        key = s.group_name_attribute.lower()
        return frozenset(name for _, values in entries for name in values.get(key, []))

    async def probe(self) -> list[str]:
        """What is wrong: URLs that cannot bind the search account, bases missing (or unreadable)."""
        s, problems = self._settings, []
        for url in s.urls:
            try:
                if not await self._run(self._binds, self._bind_as, s.bind_dn, s.bind_password, url):
                    problems.append(f"{url}: the search account was refused")
            except DirectoryUnavailable as exc:
                problems.append(f"{url}: {exc}")
        bases = (("user_base", s.user_base), ("group_base", s.group_base))
        for label, base in bases if len(problems) < len(s.urls) else ():
            try:
                if not await self._run(self._searches, self._search, base, "(objectClass=*)", ["1.1"], 1):
                    problems.append(f"{label} {base}: no such entry (or the search account cannot read it)")
            except DirectoryUnavailable as exc:
                problems.append(f"{label} {base}: {exc}")
        return problems

    async def close(self) -> None:
        with self._lock:
            idle, self._idle, self._capacity = self._idle, [], 0
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self._searches, _close, conn) for conn in idle))
        self._searches.shutdown(wait=False, cancel_futures=True)
        self._binds.shutdown(wait=False, cancel_futures=True)

    async def _run(self, pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
        # Each URL tried may take `timeout` to connect; the answer may take `timeout` more.
        budget = self._settings.timeout * (len(self._settings.urls) + 1)
        future = asyncio.get_running_loop().run_in_executor(pool, fn, *args)
        try:
            return await asyncio.wait_for(future, budget)
        except TimeoutError:
            raise DirectoryUnavailable(f"no answer within {budget:g} s") from None

    def _search(self, base: str, query: str, attrs: list[str],
                limit: int) -> list[tuple[str, dict[str, list[str]]]]:
        conn, reused = self._checkout()
        try:
            ok = conn.search(base, query, ldap3.SUBTREE, attributes=attrs, size_limit=limit,
                             time_limit=math.ceil(self._settings.timeout))
        except ldap_errors.LDAPException as exc:
            _close(conn)
            if reused and isinstance(exc, LDAPCommunicationError) and not isinstance(exc, TimeoutError):
                # Closed by the server since: the next pooled one (pool_size at most), or a fresh one.
                return self._search(base, query, attrs, limit)
            raise DirectoryUnavailable(f"search failed: {_describe(exc)}") from None
        result, response = conn.result, conn.response or []
        self._checkin(conn)
        if not ok and result["result"] not in (0, 4, 32):  # success, size limit, no such base
            raise DirectoryUnavailable(f"search refused: {result['description']}")
        # Keys lower-cased; a value that is not UTF-8 never equals a valid name or group.
        return [(e["dn"], {k.lower(): [v.decode("utf-8", "replace") for v in values]
                           for k, values in e["raw_attributes"].items()})
                for e in response if e["type"] == "searchResEntry"]

    def _checkout(self) -> tuple[ldap3.Connection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        conn = self._open()
        try:
            if self._bind(conn, self._settings.bind_dn, self._settings.bind_password):
                return conn, False
            raise DirectoryUnavailable(f"the search account was refused: {conn.result['description']}")
        except DirectoryUnavailable:
            _close(conn)
            raise

    def _checkin(self, conn: ldap3.Connection) -> None:
        with self._lock:
            if len(self._idle) < self._capacity and not conn.closed:
                self._idle.append(conn)
                return
        _close(conn)

    def _bind_as(self, dn: str, password: str, url: str | None = None) -> bool:
        conn = self._open_url(url) if url else self._open()
        try:
            return self._bind(conn, dn, password)
        finally:
            _close(conn)

    def _bind(self, conn: ldap3.Connection, dn: str, password: str) -> bool:
        """True: bound; False: these credentials are refused; DirectoryUnavailable otherwise."""
        if not (conn.server.ssl or conn.tls_started or is_loopback_host(conn.server.host)):
            raise DirectoryUnavailable(f"refusing to send a password in clear text to {conn.server.host}")
        # Sent as typed: ldap3 would SASLprep (NFKC-normalise) a str, and refuse some.
        conn.user, conn.password = dn, password.encode("utf-8", "surrogatepass")
        try:
            bound = bool(conn.bind(read_server_info=False))
        except ldap_errors.LDAPException as exc:
            raise DirectoryUnavailable(f"bind failed: {_describe(exc)}") from None
        finally:
            conn.password = None  # ldap3's repr of a connection shows its password
        if not bound and conn.result["result"] not in _REFUSED:
            raise DirectoryUnavailable(f"bind failed: {conn.result['description']}")
        return bound

    def _open(self) -> ldap3.Connection:
        """A connection (TLS up when configured) to the first URL that answers, just-failed ones last."""
        now, failures = time.monotonic(), []
        for url in sorted(self._settings.urls, key=lambda u: self._down_until.get(u, 0.0) > now):
            try:
                conn = self._open_url(url)
            except DirectoryUnavailable as exc:
                failures.append(f"{url}: {exc}")
                self._down_until[url] = time.monotonic() + DOWN_FOR
                continue
            self._down_until.pop(url, None)
            return conn
        raise DirectoryUnavailable("no directory server answered (" + "; ".join(failures) + ")")

    def _open_url(self, url: str) -> ldap3.Connection:
        s, parts = self._settings, urlsplit(url)
        host, secure = parts.hostname or "", parts.scheme == "ldaps"
        server = ldap3.Server(host, port=parts.port or (636 if secure else 389), use_ssl=secure,
                              tls=_Tls(host, s.ca_file), get_info=ldap3.NONE, connect_timeout=s.timeout)
        # No referrals (they would take our credentials elsewhere), no client-side rewriting.
        conn = ldap3.Connection(server, authentication=ldap3.SIMPLE, read_only=True,
                                receive_timeout=math.ceil(s.timeout), auto_referrals=False,
                                auto_escape=False, auto_range=False, check_names=False)
        try:
            conn.open(read_server_info=False)
            conn.socket.settimeout(s.timeout)
            if s.start_tls and not secure and not conn.start_tls(read_server_info=False):
                raise ldap_errors.LDAPStartTLSError("StartTLS refused")
        except (ldap_errors.LDAPException, OSError) as exc:
            _close(conn)
            raise DirectoryUnavailable(_describe(exc)) from None
        return conn


def _close(conn: ldap3.Connection) -> None:
    with contextlib.suppress(ldap_errors.LDAPException, OSError):  # thrown away either way
        conn.unbind()
    with contextlib.suppress(OSError, AttributeError):  # ldap3 skips it after a socket error
        conn.socket.close()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]
