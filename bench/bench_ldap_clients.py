#!/usr/bin/env python3
"""bonsai (native asyncio) vs ldap3 (sync, in threads) for the gateway's directory login.

Also measured: the gateway's own client (gateway/identity/ldap_client.py), ldap3 in two pools.

    python bench/bench_ldap_clients.py [--logins 300] [--concurrency 16] [--url ldap|ldaps]

Starts the test slapd (tests/support/slapd.py) and runs, with each library, the login sequence
of issue 12 from an asyncio event loop: a user search on a pooled connection bound as the
search account, a bind as the found DN on a fresh connection, a group search on a pooled
connection. ``--logins`` of them one after the other, then the same number with
``--concurrency`` at a time. Pools hold 4 connections (bonsai: checked out exclusively, since an
AIOLDAPConnection polls one operation at a time; ldap3: one connection per worker thread).
Reported: logins/s, p50/p95 per login, this process's CPU seconds, and the event loop's worst
lag (a 1 ms ticker) during the run. Last, each library against a frozen slapd (SIGSTOP): does
one login attempt with a 1 s timeout stall the event loop?

Measured here (2 shared cores, slapd 2.5.13 on loopback, bonsai 1.5.5, ldap3 2.9.1; noisy, so
ranges over three runs), logins/s sequential | 16 concurrent:
    ldap://   bonsai 92-557 | 229-537   ldap3 156-426 | 246-447   gateway 211 | 193
    ldaps://  bonsai 80-335 | 201-326   ldap3 57-150 | 53-191     gateway 110 | 165
CPU per login is about the same (1-7 ms). The difference that decided: against a frozen slapd,
bonsai's ldaps:// connect blocked the event loop for the whole freeze (3 s here, past its 1 s
timeout, the GIL held), while ldap3 in threads kept the loop's worst lag under 10 ms. bonsai
also has no Linux wheel (a C build against libldap-dev and libsasl2-dev, in the image too).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import ldap3

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests"), str(HERE.parent)]

from support.slapd import Slapd, start_slapd  # noqa: E402

from gateway.identity.ldap_client import DirectoryClient, DirectoryClientSettings  # noqa: E402

try:  # not a dependency of the gateway: pip install bonsai (needs libldap-dev, libsasl2-dev)
    import bonsai
    from bonsai.asyncio import AIOLDAPConnection
except ImportError:
    bonsai = None

USERS = ("alice", "bob", "dave", "erin")
POOL = 4
Login = Callable[[str], Awaitable[bool]]


class Bonsai:
    def __init__(self, url: str, slapd: Slapd, timeout: float) -> None:
        self.url, self.slapd, self.timeout = url, slapd, timeout
        self.idle: asyncio.Queue[AIOLDAPConnection] = asyncio.Queue()
        self.made = 0

    def client(self, dn: str, password: str) -> bonsai.LDAPClient:
        client = bonsai.LDAPClient(self.url)
        client.set_ca_cert(str(self.slapd.ca_file))
        client.set_cert_policy("demand")
        client.set_credentials("SIMPLE", user=dn, password=password)
        return client

    async def search(self, base: str, flt: str, attrs: list[str]) -> list[Any]:
        if self.idle.empty() and self.made < POOL:
            self.made += 1
            conn = await self.client(self.slapd.bind_dn, self.slapd.bind_password).connect(
                is_async=True, timeout=self.timeout)
        else:
            conn = await self.idle.get()
        try:
            result: list[Any] = await conn.search(base, 2, flt, attrs, timeout=self.timeout)
            return result
        finally:
            self.idle.put_nowait(conn)

    async def login(self, uid: str) -> bool:
        found = await self.search(self.slapd.user_base, f"(&(objectClass=person)(uid={uid}))",
                                  ["uid", "pwdChangedTime"])
        dn = str(found[0].dn)
        try:
            conn = await self.client(dn, self.slapd.passwords[uid]).connect(
                is_async=True, timeout=self.timeout)
            conn.close()
        except bonsai.AuthenticationError:
            return False
        groups = await self.search(self.slapd.group_base, f"(member={dn})", ["cn"])
        return bool(groups) or uid == "dave"

    def close(self) -> None:
        while not self.idle.empty():
            self.idle.get_nowait().close()


class Ldap3:
    def __init__(self, url: str, slapd: Slapd, timeout: float) -> None:
        tls = ldap3.Tls(ca_certs_file=str(slapd.ca_file), validate=2)
        # get_info=NONE: else every bind also reads the root DSE and the whole schema.
        self.server = ldap3.Server(url, connect_timeout=timeout, tls=tls, get_info=ldap3.NONE)
        self.slapd, self.timeout = slapd, timeout
        self.receive = math.ceil(timeout)  # ldap3 packs it into SO_RCVTIMEO: whole seconds only
        self.local = threading.local()
        self.pool = ThreadPoolExecutor(POOL, thread_name_prefix="ldap3")
        self.conns: list[ldap3.Connection] = []

    def conn(self) -> ldap3.Connection:
        conn: ldap3.Connection | None = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.bound(self.slapd.bind_dn, self.slapd.bind_password)
            assert conn.bound
            self.local.conn = conn
            self.conns.append(conn)
        return conn

    def bound(self, dn: str, password: str) -> ldap3.Connection:
        conn = ldap3.Connection(self.server, dn, password, receive_timeout=self.receive,
                                read_only=True)
        conn.open()
        # ldap3 leaves Nagle on: a TLS bind then waits out the peer's delayed ACK (40 ms).
        conn.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.bind()
        return conn

    def login_sync(self, uid: str) -> bool:
        conn = self.conn()
        conn.search(self.slapd.user_base, f"(&(objectClass=person)(uid={uid}))",
                    attributes=["uid", "pwdChangedTime"])
        dn = conn.entries[0].entry_dn
        user = self.bound(dn, self.slapd.passwords[uid])
        ok = user.bound
        user.unbind()
        if not ok:
            return False
        conn.search(self.slapd.group_base, f"(member={dn})", attributes=["cn"])
        return bool(conn.entries) or uid == "dave"

    async def login(self, uid: str) -> bool:
        return await asyncio.get_running_loop().run_in_executor(self.pool, self.login_sync, uid)

    def close(self) -> None:
        for conn in self.conns:
            conn.unbind()
        self.pool.shutdown()


class Gateway:
    """The gateway's own client (gateway/identity/ldap_client.py: ldap3 in thread pools)."""

    def __init__(self, url: str, slapd: Slapd, timeout: float) -> None:
        self.slapd = slapd
        self.client = DirectoryClient(DirectoryClientSettings(
            urls=(url,), start_tls=False, ca_file=slapd.ca_file, bind_dn=slapd.bind_dn,
            bind_password=slapd.bind_password, user_base=slapd.user_base, username_attribute="uid",
            user_filter="(objectClass=person)", group_base=slapd.group_base,
            group_filter="(member={dn})", group_name_attribute="cn", timeout=timeout, pool_size=POOL))

    async def login(self, uid: str) -> bool:
        user = await self.client.find_user(uid)
        assert user is not None
        if not await self.client.check_password(user.dn, self.slapd.passwords[uid]):
            return False
        return bool(await self.client.groups_of(user.dn)) or uid == "dave"

    async def close(self) -> None:
        await self.client.close()


def resume_later(slapd: Slapd, seconds: float) -> subprocess.Popen[bytes]:
    """SIGCONT from another process: a library that holds the GIL while it blocks would also
    stop a thread of ours from ever resuming slapd."""
    return subprocess.Popen(["sh", "-c", f"sleep {seconds}; kill -CONT {slapd.process.pid}"])


async def closed(lib: Any) -> None:
    result = lib.close()
    if asyncio.iscoroutine(result):
        await result


async def ticker(lags: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(0.001)
        lags.append(time.perf_counter() - started - 0.001)


async def run(login: Login, logins: int, concurrency: int) -> dict[str, float]:
    sem = asyncio.Semaphore(concurrency)
    times: list[float] = []

    async def one(i: int) -> None:
        async with sem:
            started = time.perf_counter()
            assert await login(USERS[i % len(USERS)])
            times.append(time.perf_counter() - started)

    lags: list[float] = []
    stop = asyncio.Event()
    tick = asyncio.create_task(ticker(lags, stop))
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(logins)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    stop.set()
    await tick
    q = statistics.quantiles(times, n=20)
    return {"per_s": logins / wall, "p50_ms": q[9] * 1e3, "p95_ms": q[18] * 1e3,
            "cpu_s": cpu, "lag_ms": max(lags) * 1e3}


async def frozen(login: Login, slapd: Slapd) -> tuple[float, str]:
    """Worst event loop lag while one login runs into a frozen slapd (1 s timeout)."""
    lags: list[float] = []
    stop = asyncio.Event()
    tick = asyncio.create_task(ticker(lags, stop))
    await asyncio.sleep(0.05)
    slapd.pause()
    guard = resume_later(slapd, 3)
    try:
        outcome = "no error"
        try:
            await asyncio.wait_for(login("alice"), 5.0)
        except Exception as exc:
            outcome = type(exc).__name__
    finally:
        slapd.resume()
        guard.kill()
        guard.wait()
    stop.set()
    await tick
    return max(lags) * 1e3, outcome


async def bench(args: argparse.Namespace, slapd: Slapd) -> None:
    url = slapd.url if args.url == "ldap" else slapd.ldaps_url
    kinds: list[tuple[str, Any]] = [("ldap3", Ldap3), ("gateway", Gateway)]
    if bonsai is not None:
        kinds.insert(0, ("bonsai", Bonsai))
    for name, kind in kinds:
        for concurrency in (1, args.concurrency):
            lib = kind(url, slapd, 5.0)
            await lib.login("alice")  # warm the pool
            r = await run(lib.login, args.logins, concurrency)
            await closed(lib)
            print(f"{name:7} {args.url:5} x{concurrency:<3} {r['per_s']:7.0f} logins/s  "
                  f"p50 {r['p50_ms']:6.2f} ms  p95 {r['p95_ms']:6.2f} ms  "
                  f"cpu {r['cpu_s']:5.2f} s  worst loop lag {r['lag_ms']:6.1f} ms", flush=True)
        fresh = kind(url, slapd, 1.0)
        lag, outcome = await frozen(fresh.login, slapd)
        print(f"{name:7} {args.url:5} frozen slapd, cold pool: {outcome}, worst loop lag {lag:.0f} ms")
        await closed(fresh)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--logins", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--url", choices=("ldap", "ldaps"), default="ldap")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ldap-") as tmp:
        slapd = start_slapd(Path(tmp) / "slapd")
        try:
            asyncio.run(bench(args, slapd))
        finally:
            slapd.close()


if __name__ == "__main__":
    main()
