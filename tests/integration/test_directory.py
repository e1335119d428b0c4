"""Directory (LDAP) logins through the running gateway, against the session's real slapd.

Local accounts alice, bob, carol and dave (tests/support/gateway.py) shadow the directory's; the
directory users here are erin (registry-admins, platform) and heidi (platform). A test that
stops slapd starts it again before it ends.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Docker, Slapd, Upstream, free_port
from support.credentials import basic
from support.directory import (
    SCOPE,
    directory_config,
    directory_requests,
    granted,
    logged_dn,
    out_of_group,
    post_token,
    token,
    token_claims,
    v2_status,
)
from support.gateway import RunningGateway, running_gateway
from support.slapd import PASSWORDS, user_dn

PULL_DENIED = "repository does not exist or may require 'docker login'"
CACHE_TTL = 2


@pytest.fixture
def gateway(slapd: Slapd, tmp_path: Path) -> Iterator[RunningGateway]:
    port = free_port()
    with running_gateway(directory_config(slapd, port, tmp_path), tmp_path / "gw", port) as gw:
        yield gw


def test_a_directory_user_gets_what_their_group_grants(gateway: RunningGateway) -> None:
    status, body = token(gateway, "erin", PASSWORDS["erin"])
    assert status == 200
    assert granted(body) == ["pull", "push"]
    assert token(gateway, "erin", "wrong")[0] == 401
    assert token(gateway, "nobody-here", "whatever")[0] == 401
    lines = [json.loads(line) for line in
             Path(gateway.config["audit"]["file"]).read_text().splitlines()]
    assert any(line.get("user") == "erin" and line.get("kind") == "directory" for line in lines)
    assert directory_requests(gateway, "bind", "ok") >= 1
    assert directory_requests(gateway, "groups", "ok") >= 1


def test_a_user_in_no_granting_group_gets_nothing(gateway: RunningGateway, slapd: Slapd) -> None:
    with out_of_group(slapd, "platform", "erin"):
        status, body = token(gateway, "erin", PASSWORDS["erin"])
        assert status == 200
        assert granted(body) == []


def test_an_empty_password_never_reaches_a_bind(gateway: RunningGateway, slapd: Slapd) -> None:
    before = slapd.binds(user_dn("erin"))
    assert token(gateway, "erin", "")[0] == 401
    assert slapd.binds(user_dn("erin")) == before


@pytest.mark.parametrize("name", ["*", "erin)(uid=*", "grace*(ops)", "frank jones", "Carol"])
def test_injection_looking_taken_and_invalid_names_are_refused(
        gateway: RunningGateway, name: str) -> None:
    password = PASSWORDS.get(name, PASSWORDS["erin"])
    assert token(gateway, name, password)[0] == 401


def test_a_second_login_within_cache_ttl_makes_no_bind(
        gateway: RunningGateway, slapd: Slapd) -> None:
    assert token(gateway, "erin", PASSWORDS["erin"])[0] == 200
    before = slapd.binds(user_dn("erin"))
    assert token(gateway, "erin", PASSWORDS["erin"])[0] == 200
    assert v2_status(gateway, "erin", PASSWORDS["erin"])[0] == 200
    assert slapd.binds(user_dn("erin")) == before
    assert token(gateway, "erin", "wrong")[0] == 401  # remembered by credentials, not by name


def test_a_stopped_directory_is_503_never_a_grant(gateway: RunningGateway, slapd: Slapd) -> None:
    assert token(gateway, "erin", PASSWORDS["erin"])[0] == 200
    slapd.stop()
    try:
        status, body = token(gateway, "heidi", PASSWORDS["heidi"])
        assert status == 503
        assert body["errors"][0]["code"] == "UNAVAILABLE"
        status, text = v2_status(gateway, "heidi", PASSWORDS["heidi"])
        assert status == 503 and "UNAVAILABLE" in text
        assert token(gateway, "alice", "wrong")[0] == 401  # local accounts still decide alone
        assert directory_requests(gateway, "search", "error") >= 1
        status, body = token(gateway, "erin", PASSWORDS["erin"])  # remembered: still works
        assert status == 200 and granted(body) == ["pull", "push"]
        # A remembered name with another password: wrong, as with the directory up (401);
        # a name nobody remembers: 503 whatever the password.
        assert token(gateway, "erin", "wrong")[0] == 401
        assert token(gateway, "heidi", "wrong")[0] == 503
    finally:
        slapd.start()
    assert token(gateway, "heidi", PASSWORDS["heidi"])[0] == 200


def test_tokens_live_cache_ttl_and_refreshes_ask_the_directory_again(
        gateway: RunningGateway, slapd: Slapd) -> None:
    status, body = post_token(gateway, {
        "grant_type": "password", "username": "erin", "password": PASSWORDS["erin"],
        "service": "gateway.test", "scope": SCOPE, "client_id": "test", "access_type": "offline"})
    assert status == 200 and body["expires_in"] <= 60  # cache_ttl, below token.ttl (300)
    refresh = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
               "service": "gateway.test", "scope": SCOPE, "client_id": "test"}
    status, body = post_token(gateway, refresh)
    assert status == 200 and granted(body) == ["pull", "push"]
    with out_of_group(slapd, "platform", "erin"):
        status, body = post_token(gateway, refresh)
        assert status == 200 and granted(body) == []  # groups read again at the refresh
    slapd.stop()
    try:
        assert post_token(gateway, refresh)[0] == 503
    finally:
        slapd.start()


def test_a_reload_rebuilds_the_client_and_forgets_remembered_logins(
        gateway: RunningGateway, slapd: Slapd) -> None:
    assert token(gateway, "erin", PASSWORDS["erin"])[0] == 200
    config = gateway.copy_config()
    Path(config["directory"]["bind_password_file"]).write_text("not-the-bind-password\n")
    config["directory"]["timeout"] = 3
    gateway.reload(config, settle=1.0)
    assert token(gateway, "erin", PASSWORDS["erin"])[0] == 503  # the search account is refused
    Path(config["directory"]["bind_password_file"]).write_text(slapd.bind_password + "\n")
    config["directory"]["timeout"] = 2
    gateway.reload(config, settle=1.0)
    assert token(gateway, "erin", PASSWORDS["erin"])[0] == 200
    log = gateway.log_text()
    assert slapd.bind_password not in log and "not-the-bind-password" not in log
    assert PASSWORDS["erin"] not in log


@pytest.mark.slow
def test_a_wrong_password_and_an_unknown_name_look_alike(gateway: RunningGateway,
                                                         slapd: Slapd) -> None:
    """Same status, same bytes, and the same directory work (one search, one bind: an unknown
    name binds against a dummy DN), so neither answer nor traffic tells who exists."""
    def attempt(user: str) -> tuple[int, bytes, float, int]:
        searches, binds = (directory_requests(gateway, "search", "ok"),
                           directory_requests(gateway, "bind", "ok"))
        total = slapd.binds()
        request = urllib.request.Request(f"{gateway.url}/v2/", headers=basic(user, "wrong"))
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=20)
        with refused.value:
            body = refused.value.read()
        work = (directory_requests(gateway, "search", "ok") - searches,
                directory_requests(gateway, "bind", "ok") - binds)
        return refused.value.code, body, work[0] + 10 * work[1], slapd.binds() - total

    attempt("heidi")  # opens the search account's pooled connection (its own bind)
    known, unknown = attempt("erin"), attempt("nobody-here")
    assert known == unknown
    assert known[0] == 401 and known[2:] == (11, 1)  # one search and one bind


def test_lockout_counts_a_directory_name_in_any_case_and_then_spares_the_directory(
        slapd: Slapd, tmp_path: Path) -> None:
    """The directory matches `Erin` and ` ERIN` to erin: they share her failures; once locked
    out, even the right password is refused without a bind (no spraying through the gateway)."""
    port = free_port()
    config = directory_config(slapd, port, tmp_path)
    config["auth"] = {"lockout": {"max_failures": 3, "window": 60, "cooldown": 60}}
    with running_gateway(config, tmp_path / "gw", port) as gw:
        for attempt, typed in enumerate(("erin", "Erin", " ERIN")):
            assert token(gw, typed, f"wrong-{attempt}")[0] == 401
        binds = slapd.binds(user_dn("erin"))
        status, _ = token(gw, "erin", PASSWORDS["erin"])
        assert status == 429
        assert slapd.binds(user_dn("erin")) == binds
        assert token(gw, "heidi", PASSWORDS["heidi"])[0] == 200  # only erin is locked out


def test_a_directory_user_has_a_personal_namespace(slapd: Slapd, tmp_path: Path) -> None:
    """`{user}` is the name the directory returned: erin gets home/erin, never heidi's."""
    port = free_port()
    config = directory_config(slapd, port, tmp_path)
    config["repositories"] = [{"match": "home/{user}/**", "push": ["authenticated"]},
                              *config["repositories"]]
    with running_gateway(config, tmp_path / "gw", port) as gw:
        for repository, actions in (("home/erin/tool", ["pull", "push"]),
                                    ("home/heidi/tool", []), ("home/erin", [])):
            status, body = post_token(gw, {
                "grant_type": "password", "service": "gateway.test", "username": "erin",
                "password": PASSWORDS["erin"], "scope": f"repository:{repository}:pull,push"})
            assert status == 200, body
            assert sorted(a for entry in token_claims(body)["access"]
                          for a in entry["actions"]) == actions, repository


def test_docker_login_push_pull_as_a_directory_user(
        slapd: Slapd, tmp_path: Path, registry_upstream: Upstream, docker: Docker,
        busybox_image: str) -> None:
    port = free_port()
    config = directory_config(slapd, port, tmp_path, registry_upstream.url)
    with running_gateway(config, tmp_path / "gw", port) as gw:
        docker.login(gw.host, "erin", PASSWORDS["erin"])
        ref = f"{gw.host}/platform/app:1"
        docker.run("tag", busybox_image, ref)
        docker.run("push", ref)
        docker.run("rmi", ref)
        docker.run("pull", ref)
        docker.run("rmi", ref)


@pytest.mark.slow
def test_a_user_taken_out_of_the_group_cannot_pull_within_cache_ttl(
        slapd: Slapd, tmp_path: Path, registry_upstream_session: Upstream, docker: Docker,
        busybox_image: str) -> None:
    port = free_port()
    config = directory_config(slapd, port, tmp_path, registry_upstream_session.url)
    config["directory"]["cache_ttl"] = CACHE_TTL
    with running_gateway(config, tmp_path / "gw", port) as gw:
        docker.login(gw.host, "heidi", PASSWORDS["heidi"])  # team platform by group platform
        ref = f"{gw.host}/platform/revoked:1"
        docker.run("tag", busybox_image, ref)
        docker.run("push", ref)
        docker.run("rmi", ref)
        docker.run("pull", ref)
        docker.run("rmi", ref)
        with out_of_group(slapd, "platform", "heidi"):
            started = time.monotonic()
            binds, searches = slapd.binds(logged_dn("heidi")), directory_requests(gw, "search", "ok")
            result = docker.run("pull", ref, check=False)
            assert result.returncode != 0 and PULL_DENIED in result.stderr, result.stderr
            assert time.monotonic() - started < CACHE_TTL + 5
            # docker sent its refresh token (no password, no bind); the gateway asked again.
            assert slapd.binds(logged_dn("heidi")) == binds
            assert directory_requests(gw, "search", "ok") > searches
        docker.run("pull", ref)  # back in the group: the next refresh grant sees it
        docker.run("rmi", ref)
