"""Two gateway replicas sharing one redis-server and one token key, on the session's slapd: a
directory login remembered by one serves the other without a bind, a value written into Redis
by someone else is not trusted, and a password change retires refresh tokens on both."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import RedisServer, Slapd, free_port
from support.credentials import write_key
from support.directory import (
    SCOPE,
    directory_config,
    directory_requests,
    logged_dn,
    new_password,
    post_token,
    reload_applied,
    token,
    token_claims,
    v2_status,
)
from support.gateway import RunningGateway, running_gateway
from support.http_api import TEST_REDIS_TIMEOUT
from support.slapd import PASSWORDS

OPERATIONS = ("search", "bind", "groups")
HEIDI = logged_dn("heidi")


@dataclass
class Pair:
    one: RunningGateway
    two: RunningGateway


@pytest.fixture
def pair(slapd: Slapd, redis_server: RedisServer, tmp_path: Path) -> Iterator[Pair]:
    key = write_key(tmp_path / "token.pem")
    with ExitStack() as stack:
        replicas = []
        for name in ("one", "two"):
            port = free_port()
            (tmp_path / name).mkdir()
            # Each replica has its own bind password file: paths differ, settings do not.
            config = directory_config(slapd, port, tmp_path / name)
            config["cache"] |= {"redis_url": redis_server.url, "redis_timeout": TEST_REDIS_TIMEOUT}
            config["token"]["key_file"] = str(key)
            replicas.append(stack.enter_context(running_gateway(config, tmp_path / name, port)))
        yield Pair(*replicas)


def asked(gateway: RunningGateway) -> float:
    """Every directory operation this replica made, whatever its result."""
    return sum(directory_requests(gateway, operation, result) for operation in OPERATIONS
               for result in ("ok", "error", "timeout"))


def test_a_login_on_one_replica_costs_the_other_no_bind(
        pair: Pair, slapd: Slapd, redis_server: RedisServer) -> None:
    assert v2_status(pair.one, "heidi", PASSWORDS["heidi"])[0] == 200
    binds, asked_before = slapd.binds(HEIDI), asked(pair.two)
    assert v2_status(pair.two, "heidi", PASSWORDS["heidi"])[0] == 200
    status, body = token(pair.two, "heidi", PASSWORDS["heidi"])
    assert status == 200 and token_claims(body)["groups"] == ["platform"]
    assert slapd.binds(HEIDI) == binds
    assert asked(pair.two) == asked_before
    # Remembered by credentials: another password on the other replica is a bind, and a 401.
    assert v2_status(pair.two, "heidi", "not-heidis")[0] == 401
    assert slapd.binds(HEIDI) == binds + 1
    keys = [str(key) for key in redis_server.client().keys("rg:i:*")]
    values = [str(redis_server.client().get(key) or "") for key in keys]
    assert keys and not any("heidi" in key for key in keys)
    assert not any(PASSWORDS["heidi"] in text for text in keys + values)

    # Both reload with another `directory`: forgotten on both, then shared again.
    for replica in (pair.two, pair.one):
        config = replica.copy_config()
        config["directory"]["user_filter"] = "(objectClass=inetOrgPerson)"
        reload_applied(replica, config)
    assert v2_status(pair.two, "heidi", PASSWORDS["heidi"])[0] == 200
    assert slapd.binds(HEIDI) == binds + 2
    assert v2_status(pair.one, "heidi", PASSWORDS["heidi"])[0] == 200
    assert slapd.binds(HEIDI) == binds + 2


def test_a_value_written_into_redis_is_not_trusted(
        pair: Pair, slapd: Slapd, redis_server: RedisServer) -> None:
    raw = redis_server.client()
    before = set(raw.keys("rg:i:s:*"))
    assert v2_status(pair.one, "heidi", PASSWORDS["heidi"])[0] == 200
    [subject] = set(raw.keys("rg:i:s:*")) - before
    encoded, _, tag = str(raw.get(subject) or "").rpartition(":")
    value = json.loads(encoded)
    assert value["g"] == ["platform"]
    value["g"] = ["platform", "registry-admins"]  # an admin group, the old tag kept
    raw.set(subject, json.dumps(value, separators=(",", ":")) + ":" + tag)
    binds = slapd.binds(HEIDI)
    status, body = token(pair.two, "heidi", PASSWORDS["heidi"])
    assert status == 200 and token_claims(body)["groups"] == ["platform"]
    assert slapd.binds(HEIDI) == binds + 1  # the directory was asked again

    redis_server.stop()  # Redis down: logins are the directory's and this process's alone
    binds = slapd.binds(HEIDI)
    for replica in (pair.one, pair.two):  # remembered in process by both by now
        status, body = token(replica, "heidi", PASSWORDS["heidi"])
        assert status == 200 and token_claims(body)["groups"] == ["platform"]
    assert slapd.binds(HEIDI) == binds
    assert token(pair.two, "erin", PASSWORDS["erin"])[0] == 200
    assert token(pair.two, "erin", "wrong")[0] == 401


def test_a_password_change_retires_refresh_tokens_on_both_replicas(
        pair: Pair, slapd: Slapd) -> None:
    status, body = post_token(pair.one, {
        "grant_type": "password", "username": "erin", "password": PASSWORDS["erin"],
        "service": "gateway.test", "scope": SCOPE, "client_id": "test", "access_type": "offline"})
    assert status == 200
    refresh = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
               "service": "gateway.test", "scope": SCOPE, "client_id": "test"}
    assert post_token(pair.two, refresh)[0] == 200
    with new_password(slapd, "erin", "erin-new-secret", PASSWORDS["erin"]):
        for replica in (pair.two, pair.one):
            status, body = post_token(replica, refresh)
            assert status == 401, body
        status, body = post_token(pair.two, {
            "grant_type": "password", "username": "erin", "password": "erin-new-secret",
            "service": "gateway.test", "scope": SCOPE, "client_id": "test",
            "access_type": "offline"})
        assert status == 200
        fresh = {**refresh, "refresh_token": body["refresh_token"]}
        assert post_token(pair.one, fresh)[0] == 200
        time.sleep(1.1)  # pwdChangedTime counts whole seconds: the next change must show
    # The old password back: it moved pwdChangedTime again, so the one issued meanwhile dies too.
    assert post_token(pair.one, fresh)[0] == 401
