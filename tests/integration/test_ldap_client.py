"""The directory client against a real slapd: logins, TLS, injection, failover, outages.

The slapd is the session's (tests/support/slapd.py, data in tests/support/ldap/people.ldif);
a test that changes its data, stops it or pauses it puts it back before it ends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from support import Slapd, free_port
from support.slapd import SERVICE_DN, user_dn
from support.tls import make_certificates

from gateway.config.identity_checks import directory_url_problems as url_problems
from gateway.identity.ldap_client import (
    DirectoryClient,
    DirectoryClientSettings,
    DirectoryUnavailable,
)

ALICE = user_dn("alice")


def settings(slapd: Slapd, **changes: Any) -> DirectoryClientSettings:
    base = DirectoryClientSettings(
        urls=(slapd.url,), start_tls=False, ca_file=slapd.ca_file, bind_dn=slapd.bind_dn,
        bind_password=slapd.bind_password, user_base=slapd.user_base, username_attribute="uid",
        user_filter="(objectClass=person)", group_base=slapd.group_base,
        group_filter="(member={dn})", group_name_attribute="cn", timeout=5.0,
    )
    return dataclasses.replace(base, **changes)


@asynccontextmanager
async def opened(slapd: Slapd, **changes: Any) -> AsyncIterator[DirectoryClient]:
    directory = DirectoryClient(settings(slapd, **changes))
    try:
        yield directory
    finally:
        await directory.close()


@pytest.fixture
async def client(slapd: Slapd) -> AsyncIterator[DirectoryClient]:
    async with opened(slapd) as directory:
        yield directory


@contextmanager
def member_of(slapd: Slapd, group: str, uid: str) -> Iterator[None]:
    def change(op: str) -> str:
        dn = f"cn={group},{slapd.group_base}"
        return f"dn: {dn}\nchangetype: modify\n{op}: member\nmember: {user_dn(uid)}\n"

    slapd.modify(change("add"))
    try:
        yield
    finally:
        slapd.modify(change("delete"))


async def login(directory: DirectoryClient, username: str, password: str) -> frozenset[str] | None:
    """The gateway's sequence: find, bind as the DN (or the dummy), then groups."""
    user = await directory.find_user(username)
    if user is None:
        await directory.dummy_bind(password)
        return None
    if not await directory.check_password(user.dn, password):
        return None
    return await directory.groups_of(user.dn)


async def test_login_over_plain_ldap_to_loopback(client: DirectoryClient) -> None:
    user = await client.find_user("alice")
    assert user is not None
    assert (user.dn, user.name, user.password_changed) == (ALICE, "alice", "20240101120000Z")
    assert await client.check_password(user.dn, "alice-secret")
    assert not await client.check_password(user.dn, "wrong")
    assert await client.groups_of(user.dn) == {"platform", "devs"}
    assert await login(client, "erin", "erin-secret") == {"registry-admins", "platform"}
    assert await login(client, "bob", "bob-secret") == {"devs"}  # plain userPassword
    assert await login(client, "dave", "dave-secret") == frozenset()  # in no group


@pytest.mark.parametrize("mode", ["ldaps", "starttls"])
async def test_login_over_tls_with_the_test_ca(slapd: Slapd, mode: str) -> None:
    url = slapd.ldaps_url if mode == "ldaps" else slapd.url
    log_before = slapd.log_path.read_text().count("TLS established")
    async with opened(slapd, urls=(url,), start_tls=mode == "starttls") as directory:
        assert await login(directory, "alice", "alice-secret") == {"platform", "devs"}
        assert await login(directory, "alice", "wrong") is None
    # The search connection and both binds: each its own TLS connection.
    assert slapd.log_path.read_text().count("TLS established") - log_before == 3


@pytest.mark.parametrize("mode", ["ldaps", "starttls"])
async def test_a_certificate_from_another_ca_is_refused(slapd: Slapd, tmp_path: Path, mode: str) -> None:
    other_ca = make_certificates(tmp_path / "other").ca_cert
    url = slapd.ldaps_url if mode == "ldaps" else slapd.url
    binds = slapd.binds()
    async with opened(slapd, urls=(url,), start_tls=mode == "starttls", ca_file=other_ca) as directory:
        with pytest.raises(DirectoryUnavailable, match=r"(?i)certificate"):
            await directory.find_user("alice")
    assert slapd.binds() == binds  # no password was sent


def test_passwords_travel_only_over_tls_or_to_loopback(slapd: Slapd) -> None:
    assert url_problems(("ldap://127.0.0.1:389", "ldap://[::1]", "ldap://localhost",
                         "ldaps://ldap.example.org", "ldaps://ldap.example.org:3269/"), False) == []
    assert url_problems(("ldap://ldap.example.org", "ldap://10.0.0.1"), True) == []
    problems = url_problems(("ldap://ldap.example.org", "http://x", "ldaps://h/dc=x", "ldap://"), False)
    assert [p.split(": ", 1)[1] for p in problems] == [
        "passwords would travel in clear text; use ldaps:// or start_tls",
        "not an ldap:// or ldaps:// URL with a host",
        "only scheme, host and port belong in the URL",
        "not an ldap:// or ldaps:// URL with a host",
    ]
    assert url_problems((), False) == ["no directory URL"]
    with pytest.raises(ValueError, match="clear text"):
        DirectoryClient(settings(slapd, urls=(slapd.url, "ldap://ldap.example.org")))


async def test_the_name_is_the_directorys(client: DirectoryClient) -> None:
    for asked in ("carol", "CAROL", "Carol"):
        user = await client.find_user(asked)
        assert user is not None and user.name == "Carol"  # the caller refuses it next to a local carol
    frank = await client.find_user("frank jones")  # not a valid account name: the caller refuses it
    assert frank is not None and frank.name == "frank jones"
    assert await client.find_user("nobody") is None
    assert await client.find_user("") is None


@pytest.mark.parametrize(
    "username",
    ["*", "*)(uid=*", "al*", "*lice", "alice)(|(uid=*", "alice)(objectClass=*", "a*)(!(uid=x",
     "\\2a", "alice\x00", "grace*", "grace*(ops", "*(ops)", "(uid=alice)", "alice\\"],
)
async def test_injection_looking_usernames_find_nobody(client: DirectoryClient, username: str) -> None:
    assert await client.find_user(username) is None


async def test_metacharacters_in_names_and_dns_are_matched_literally(client: DirectoryClient) -> None:
    grace = await client.find_user("grace*(ops)")
    assert grace is not None and grace.name == "grace*(ops)"
    assert await client.check_password(grace.dn, "grace-secret")
    assert await client.groups_of(grace.dn) == {"devs"}  # the DN's * ( ) escaped in the group filter
    heidi = await client.find_user("heidi")
    # cn=Hall\, Heidi,... as slapd spells it (cn=Hall\2C Heidi), put into the filter as it came.
    assert heidi is not None and heidi.dn.lower().startswith("cn=hall\\")
    assert await client.groups_of(heidi.dn) == {"platform"}
    assert await client.groups_of("*") == frozenset()
    assert await client.groups_of(f"{ALICE})(cn=*") == frozenset()


async def test_a_group_change_shows_on_the_next_call(slapd: Slapd, client: DirectoryClient) -> None:
    dave = user_dn("dave")
    assert await client.groups_of(dave) == frozenset()
    with member_of(slapd, "registry-admins", "dave"):
        assert await client.groups_of(dave) == {"registry-admins"}
    assert await client.groups_of(dave) == frozenset()


async def test_a_password_change_moves_pwd_changed_time(slapd: Slapd, client: DirectoryClient) -> None:
    change = f"dn: {user_dn('bob')}\nchangetype: modify\nreplace: userPassword\nuserPassword: {{}}\n"
    before = await client.find_user("bob")
    assert before is not None
    slapd.modify(change.format("bob-new-secret"))
    try:
        after = await client.find_user("bob")
        assert after is not None and after.password_changed
        assert after.password_changed != before.password_changed
        assert not await client.check_password(after.dn, "bob-secret")
        assert await client.check_password(after.dn, "bob-new-secret")
    finally:
        slapd.modify(change.format("bob-secret"))


async def test_two_entries_with_one_name_are_nobody(slapd: Slapd, client: DirectoryClient) -> None:
    dn = f"cn=Another Bob,{slapd.user_base}"
    slapd.modify(f"dn: {dn}\nchangetype: add\nobjectClass: inetOrgPerson\ncn: Another Bob\nsn: B\nuid: bob\n")
    try:
        assert await client.find_user("bob") is None
    finally:
        slapd.modify(f"dn: {dn}\nchangetype: delete\n")
    assert await client.find_user("bob") is not None


async def test_binds_counted_in_slapds_log(slapd: Slapd, client: DirectoryClient) -> None:
    assert await client.find_user("alice") is not None  # the pool's first connection binds once
    total, service, alice = slapd.binds(), slapd.binds(SERVICE_DN), slapd.binds(ALICE)
    assert await login(client, "alice", "alice-secret") == {"platform", "devs"}
    assert (slapd.binds() - total, slapd.binds(ALICE) - alice) == (1, 1)
    assert await login(client, "no-such-user", "some-password") is None
    assert slapd.binds() - total == 2  # an unknown name costs one bind too (against a dummy DN)
    assert not await client.check_password(ALICE, "")  # an empty password never reaches a bind
    await client.dummy_bind("")
    assert not await client.check_password("", "alice-secret")  # nor an anonymous one
    assert slapd.binds() - total == 2
    assert slapd.binds(SERVICE_DN) == service
    await asyncio.gather(*(login(client, "bob", "bob-secret") for _ in range(16)))
    new_pooled = slapd.binds(SERVICE_DN) - service
    assert new_pooled <= 3  # the rest of the pool (4 connections), then reused
    assert slapd.binds() - total - new_pooled == 2 + 16


async def test_failover_to_the_next_url(slapd: Slapd) -> None:
    dead = f"ldap://127.0.0.1:{free_port()}"
    async with opened(slapd, urls=(dead, slapd.url)) as directory:
        assert await login(directory, "alice", "alice-secret") == {"platform", "devs"}
        assert await directory.check_password(ALICE, "alice-secret")
        problems = await directory.probe()
        assert len(problems) == 1 and problems[0].startswith(f"{dead}: LDAPSocketOpenError"), problems
    answer = r"no directory server answered \(ldap://127\.0\.0\.1:\d+: .*; ldap://127\.0\.0\.1:\d+: "
    async with opened(slapd, urls=(dead, f"ldap://127.0.0.1:{free_port()}")) as both_dead:
        with pytest.raises(DirectoryUnavailable, match=answer):
            await both_dead.find_user("alice")


async def test_probe(slapd: Slapd, client: DirectoryClient) -> None:
    assert await client.probe() == []
    async with opened(slapd, user_base="ou=nobody,dc=example,dc=org", group_base="ou=x,dc=y") as wrong:
        assert [p.split(":")[0] for p in await wrong.probe()] == [
            "user_base ou=nobody,dc=example,dc=org", "group_base ou=x,dc=y"]
    async with opened(slapd, bind_password="not-the-password") as refused:
        assert await refused.probe() == [f"{slapd.url}: the search account was refused"]
        with pytest.raises(DirectoryUnavailable, match="the search account was refused"):
            await refused.find_user("alice")


async def test_slapd_stopped_then_back(slapd: Slapd, client: DirectoryClient) -> None:
    assert await login(client, "alice", "alice-secret")  # the pool holds a bound connection
    slapd.stop()
    try:
        for call in (lambda: client.find_user("alice"), lambda: client.check_password(ALICE, "x"),
                     lambda: client.groups_of(ALICE), lambda: client.dummy_bind("x")):
            started = time.monotonic()
            with pytest.raises(DirectoryUnavailable):
                await call()
            assert time.monotonic() - started < 2.0  # refused at once, no timeout to wait out
    finally:
        slapd.start()
    assert await login(client, "alice", "alice-secret") == {"platform", "devs"}
    slapd.stop()
    slapd.start()
    # The pooled connection died with that slapd: it is replaced, nobody sees an error.
    assert await login(client, "alice", "alice-secret") == {"platform", "devs"}


@pytest.mark.parametrize("mode", ["ldap", "ldaps"])
async def test_a_frozen_slapd_times_out_and_the_loop_runs_on(slapd: Slapd, mode: str) -> None:
    url = slapd.url if mode == "ldap" else slapd.ldaps_url
    lags: list[float] = []

    async def ticker() -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(0.01)
            lags.append(time.monotonic() - started)

    async with opened(slapd, urls=(url,), timeout=0.5) as directory:
        assert await directory.find_user("alice") is not None
        tick = asyncio.create_task(ticker())
        slapd.pause()
        try:
            for call in (lambda: directory.find_user("bob"), lambda: directory.check_password(ALICE, "x")):
                started = time.monotonic()
                with pytest.raises(DirectoryUnavailable):
                    await call()
                assert time.monotonic() - started < 1.5  # timeout 0.5 s, one URL: 1 s at most
        finally:
            slapd.resume()
            tick.cancel()
        assert max(lags) < 0.3, max(lags)
        assert await directory.find_user("alice") is not None  # back, through a fresh connection


async def test_no_password_in_reprs_errors_or_logs(slapd: Slapd, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "registry-bind-secret"
    assert secret not in repr(settings(slapd)) and secret not in repr(settings(slapd, bind_password="x"))
    async with opened(slapd, bind_password="wrong-" + secret) as directory:
        with pytest.raises(DirectoryUnavailable) as caught:
            await directory.find_user("alice")
        assert await directory.probe()
        assert not await directory.check_password(ALICE, "alice-secret-wrong")
    texts = [str(caught.value), repr(caught.value), repr(directory), caplog.text]
    assert not [text for text in texts if secret in text or "alice-secret" in text]
