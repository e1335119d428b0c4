"""Logins: unknown users and wrong passwords answered alike, also under lockout; passwords only
over TLS or loopback; check-config warns about fast (low-cost) bcrypt hashes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml
from support import Upstream, free_port
from support.credentials import basic
from support.gateway import RunningGateway, running_gateway
from support.security import ALL_PASSWORDS, SERVICE, RawResponse, raw_request, security_config

from gateway.http.errors import INSECURE_CREDENTIALS

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# (user, password): a wrong password, unknown users, refused accounts, malformed passwords.
BAD_LOGINS = [("alice", "wrong"), ("mallory", "wrong"), ("mallory", ALL_PASSWORDS["alice"]),
              ("Alice", ALL_PASSWORDS["alice"]), ("dave", ALL_PASSWORDS["dave"]),
              ("old-bot", ALL_PASSWORDS["old-bot"]), ("alice", ALL_PASSWORDS["alice"] + "x" * 80),
              ("alice", ""), ("a" * 300, "x")]


async def token_get(gateway: RunningGateway, user: str, password: str,
                    extra: dict[str, str] | None = None) -> RawResponse:
    return await raw_request(gateway.port, "GET", f"/token?service={SERVICE}&account={user}",
                             {**basic(user, password), **(extra or {})})


async def token_post(gateway: RunningGateway, user: str, password: str,
                     extra: dict[str, str] | None = None) -> RawResponse:
    form = f"grant_type=password&username={user}&password={password}&service={SERVICE}&client_id=t"
    return await raw_request(gateway.port, "POST", "/token", {**FORM, **(extra or {})},
                             form.encode())


async def v2_base(gateway: RunningGateway, user: str, password: str,
                  extra: dict[str, str] | None = None) -> RawResponse:
    return await raw_request(gateway.port, "GET", "/v2/", {**basic(user, password), **(extra or {})})


async def v2_manifest(gateway: RunningGateway, user: str, password: str,
                      extra: dict[str, str] | None = None) -> RawResponse:
    return await raw_request(gateway.port, "GET", "/v2/myteam/app/manifests/1",
                             {**basic(user, password), **(extra or {})})


ENDPOINTS = {"GET /token": token_get, "POST /token": token_post, "GET /v2/": v2_base,
             "GET manifest": v2_manifest}


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
async def test_every_bad_login_gets_the_same_answer(shared_gateway: RunningGateway,
                                                    endpoint: str) -> None:
    send = ENDPOINTS[endpoint]
    answers = [await send(shared_gateway, user, password) for user, password in BAD_LOGINS]
    assert answers[0].status == 401
    assert all(a.comparable() == answers[0].comparable() for a in answers), answers
    if endpoint.endswith("/token"):
        assert answers[0].json() == {"errors": [{"code": "UNAUTHORIZED",
                                                 "message": "incorrect username or password"}]}


@pytest.fixture
def lockout_gateway(registry_upstream: Upstream, tmp_path: Path) -> Iterator[RunningGateway]:
    port = free_port()
    config = security_config(registry_upstream.url, port, tmp_path / "token.pem")
    config["token"].pop("key_file")
    config["auth"] = {"lockout": {"max_failures": 3, "window": 300, "cooldown": 300}}
    with running_gateway(config, tmp_path / "gateway", port) as gateway:
        yield gateway


async def test_lockout_answers_known_and_unknown_users_alike(
        lockout_gateway: RunningGateway) -> None:
    locked: dict[str, list[RawResponse]] = {}
    for user in ("alice", "mallory"):
        answers = [await token_get(lockout_gateway, user, f"guess-{i}") for i in range(5)]
        assert [a.status for a in answers] == [401, 401, 401, 429, 429], answers
        locked[user] = answers
    for a, m in zip(locked["alice"], locked["mallory"], strict=True):
        assert (a.status, a.body, a.header("Retry-After") is None) == \
            (m.status, m.body, m.header("Retry-After") is None)
    # While locked, even the right password gets the lockout answer: nothing to learn there.
    right = await token_get(lockout_gateway, "alice", ALL_PASSWORDS["alice"])
    assert (right.status, right.body) == (locked["mallory"][-1].status, locked["mallory"][-1].body)
    for send in (token_post, v2_base):
        assert (await send(lockout_gateway, "alice", "x")).status == \
            (await send(lockout_gateway, "mallory", "x")).status == 429


def test_check_config_warns_about_low_cost_hashes(tmp_path: Path) -> None:
    """htpasswd -B defaults to cost 5: fast checks would tell known users from unknown ones."""
    config: dict[str, Any] = security_config("http://127.0.0.1:1", 5050, tmp_path / "k.pem")
    config["token"].pop("key_file")
    config["users"]["strong"] = {
        "password_hash": bcrypt.hashpw(b"x", bcrypt.gensalt(rounds=12)).decode()}
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("webuser:" + bcrypt.hashpw(b"y", bcrypt.gensalt(rounds=5)).decode() + "\n")
    config["htpasswd_file"] = str(htpasswd)
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "gateway", "check-config", "--config", str(path)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "users.alice.password_hash: bcrypt cost 4 is low" in result.stderr
    assert "'webuser': bcrypt cost 5 is low (htpasswd -B defaults to 5" in result.stderr
    assert "users.strong" not in result.stderr


@contextmanager
def gateway_with(upstream: Upstream, directory: Path, **server: Any) -> Iterator[RunningGateway]:
    port = free_port()
    config = security_config(upstream.url, port, directory / "token.pem")
    config["token"].pop("key_file")
    config["server"].update(server)
    with running_gateway(config, directory / "gateway", port) as gateway:
        yield gateway


REMOTE = {"X-Forwarded-For": "203.0.113.7"}


async def refresh_post(gateway: RunningGateway, extra: dict[str, str]) -> RawResponse:
    form = f"grant_type=refresh_token&refresh_token=x.y.z&service={SERVICE}&client_id=t"
    return await raw_request(gateway.port, "POST", "/token", {**FORM, **extra}, form.encode())


async def test_passwords_over_plain_http_only_from_loopback(registry_upstream: Upstream,
                                                             tmp_path: Path) -> None:
    """Behind a trusted proxy, a client elsewhere sending a password over plain HTTP is refused."""
    alice = ("alice", ALL_PASSWORDS["alice"])
    with gateway_with(registry_upstream, tmp_path, trusted_proxies=["127.0.0.1/32"]) as gateway:
        for send in (token_get, token_post, v2_base):
            refused = await send(gateway, *alice, REMOTE)
            assert refused.status == 401, send
            assert refused.json()["errors"][0]["message"] == INSECURE_CREDENTIALS
            # The proxy terminated TLS: fine. Straight from loopback: fine.
            assert (await send(gateway, *alice, {**REMOTE, "X-Forwarded-Proto": "https"})).status \
                == 200
            assert (await send(gateway, *alice)).status == 200
            # The refusal comes before any account is looked at: a wrong password gets the same.
            wrong = await send(gateway, "mallory", "nope", REMOTE)
            assert wrong.comparable() == refused.comparable()
        assert (await refresh_post(gateway, REMOTE)).json()["errors"][0]["message"] == \
            INSECURE_CREDENTIALS
        # Anonymous token requests carry no secret and are still served.
        anonymous = await raw_request(gateway.port, "GET", f"/token?service={SERVICE}", REMOTE)
        assert anonymous.status == 200
        # A proxy chain is walked from the right: the first untrusted hop is the client.
        chained = await token_get(gateway, *alice, {"X-Forwarded-For": "203.0.113.7, 127.0.0.1"})
        assert chained.status == 401


async def test_forwarded_headers_from_untrusted_peers_are_ignored(
        shared_gateway: RunningGateway) -> None:
    """Without trusted_proxies nobody can claim to be elsewhere (or to be behind TLS)."""
    alice = ("alice", ALL_PASSWORDS["alice"])
    assert (await token_get(shared_gateway, *alice, REMOTE)).status == 200


async def test_allow_insecure_basic_lifts_the_refusal(registry_upstream: Upstream,
                                                      tmp_path: Path) -> None:
    with gateway_with(registry_upstream, tmp_path, trusted_proxies=["127.0.0.1/32"],
                      allow_insecure_basic=True) as gateway:
        assert (await token_get(gateway, "alice", ALL_PASSWORDS["alice"], REMOTE)).status == 200
