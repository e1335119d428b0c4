"""Directory (LDAP) logins through the running gateway, against the session's real slapd.

Local accounts alice, bob, carol and dave (tests/support/gateway.py) shadow the directory's; the
directory users here are erin (registry-admins, platform) and heidi (platform). A test that
stops slapd starts it again before it ends.
"""

from __future__ import annotations

import base64
import contextlib
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import Docker, Slapd, Upstream, free_port
from support.credentials import basic
from support.gateway import RunningGateway, base_config, running_gateway
from support.slapd import PASSWORDS, user_dn

SCOPE = "repository:platform/app:pull,push"


def directory_config(slapd: Slapd, port: int, tmp_path: Path,
                     upstream: str = "http://127.0.0.1:9") -> dict[str, Any]:
    secret = tmp_path / "bind-password"
    secret.write_text(slapd.bind_password + "\n")
    config = base_config(upstream, port)
    config["directory"] = {
        "url": slapd.url, "bind_dn": slapd.bind_dn, "bind_password_file": str(secret),
        "user_base": slapd.user_base, "group_base": slapd.group_base, "timeout": 2, "cache_ttl": 60,
    }
    config["audit"] = {"file": str(tmp_path / "audit.jsonl")}
    config["teams"]["platform"] = {"groups": ["platform"]}
    config["repositories"] = [*config["repositories"], {
        "match": "platform/*", "pull": ["team:platform"], "push": ["team:platform"]}]
    return config


@pytest.fixture
def gateway(slapd: Slapd, tmp_path: Path) -> Iterator[RunningGateway]:
    port = free_port()
    with running_gateway(directory_config(slapd, port, tmp_path), tmp_path / "gw", port) as gw:
        yield gw


def token(gateway: RunningGateway, user: str, password: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{gateway.url}/token?service=gateway.test&scope={SCOPE}", headers=basic(user, password))
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def granted(body: dict[str, Any]) -> list[str]:
    payload = body["token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return sorted(action for entry in claims["access"] for action in entry["actions"])


def directory_requests(gateway: RunningGateway, operation: str, result: str) -> float:
    with urllib.request.urlopen(f"{gateway.url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(s.value for family in text_string_to_metric_families(text)
               for s in family.samples if s.name == "registry_gateway_directory_requests_total"
               and s.labels == {"operation": operation, "result": result})


def v2_status(gateway: RunningGateway, user: str, password: str) -> tuple[int, str]:
    request = urllib.request.Request(f"{gateway.url}/v2/", headers=basic(user, password))
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return int(response.status), ""
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


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


@contextlib.contextmanager
def out_of_platform(slapd: Slapd) -> Iterator[None]:
    def change(op: str) -> None:
        slapd.modify(f"dn: cn=platform,{slapd.group_base}\nchangetype: modify\n"
                     f"{op}: member\nmember: {user_dn('erin')}\n")
    change("delete")
    try:
        yield
    finally:
        change("add")


def test_a_user_in_no_granting_group_gets_nothing(gateway: RunningGateway, slapd: Slapd) -> None:
    with out_of_platform(slapd):
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
        assert token(gateway, "erin", "wrong")[0] == 503  # not remembered: nobody gets more
    finally:
        slapd.start()
    assert token(gateway, "heidi", PASSWORDS["heidi"])[0] == 200


def post_token(gateway: RunningGateway, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
    data = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(f"{gateway.url}/token", data=data, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


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
    with out_of_platform(slapd):
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
