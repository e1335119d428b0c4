"""Directory (LDAP) tests' shared calls: a gateway config for the session's slapd, tokens and
their grants, Basic on /v2/, the directory metric, and group membership changed for a test."""

from __future__ import annotations

import base64
import contextlib
import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from support.credentials import basic
from support.gateway import RunningGateway, base_config
from support.ops import http_answer
from support.procs import wait_until
from support.slapd import Slapd, user_dn

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


def logged_dn(uid: str) -> str:
    """`uid`'s DN as slapd spells it in its log (an escaped comma as \\2C), for Slapd.binds."""
    return user_dn(uid).replace("\\,", "\\2C")


def token(gateway: RunningGateway, user: str, password: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{gateway.url}/token?service=gateway.test&scope={SCOPE}", headers=basic(user, password))
    status, body = http_answer(request, timeout=20)
    return status, json.loads(body or b"{}")


def granted(body: dict[str, Any]) -> list[str]:
    claims = token_claims(body)
    return sorted(action for entry in claims["access"] for action in entry["actions"])


def sample(gateway: RunningGateway, name: str, labels: dict[str, str]) -> float:
    with urllib.request.urlopen(f"{gateway.url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(s.value for family in text_string_to_metric_families(text)
               for s in family.samples if s.name == name and s.labels == labels)


def directory_requests(gateway: RunningGateway, operation: str, result: str) -> float:
    return sample(gateway, "registry_gateway_directory_requests_total",
                  {"operation": operation, "result": result})


def reload_applied(gateway: RunningGateway, config: dict[str, Any]) -> None:
    """Write `config`, SIGHUP, and wait until the gateway counts a successful reload."""
    def reloads() -> float:
        return sample(gateway, "registry_gateway_config_reloads_total", {"result": "success"})
    before = reloads()
    gateway.reload(config)
    wait_until(lambda: reloads() > before, timeout=10, what="a successful reload")


def v2_status(gateway: RunningGateway, user: str, password: str) -> tuple[int, str]:
    request = urllib.request.Request(f"{gateway.url}/v2/", headers=basic(user, password))
    status, body = http_answer(request, timeout=20)
    return status, "" if status < 400 else body.decode()


def post_token(gateway: RunningGateway, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
    data = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(f"{gateway.url}/token", data=data, method="POST")
    status, body = http_answer(request, timeout=20)
    return status, json.loads(body or b"{}")


def token_claims(body: dict[str, Any]) -> dict[str, Any]:
    """The claims of the access token in a /token answer (not verified: the test's own look)."""
    payload = body["token"].split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


@contextlib.contextmanager
def out_of_group(slapd: Slapd, group: str, uid: str) -> Iterator[None]:
    """`uid` removed from `group` (ldapmodify) for the block, put back after it."""
    def change(op: str) -> None:
        slapd.modify(f"dn: cn={group},{slapd.group_base}\nchangetype: modify\n"
                     f"{op}: member\nmember: {user_dn(uid)}\n")
    change("delete")
    try:
        yield
    finally:
        change("add")


@contextlib.contextmanager
def new_password(slapd: Slapd, uid: str, password: str, old: str) -> Iterator[None]:
    """`uid`'s password changed (the ppolicy overlay moves pwdChangedTime), put back after."""
    change = f"dn: {user_dn(uid)}\nchangetype: modify\nreplace: userPassword\nuserPassword: {{}}\n"
    slapd.modify(change.format(password))
    try:
        yield
    finally:
        slapd.modify(change.format(old))
