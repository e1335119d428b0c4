"""One full scenario over plain HTTP: what moved which counter, and which secrets must not leak."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from prometheus_client.parser import text_string_to_metric_families

from support.credentials import basic, bearer
from support.gateway import PASSWORDS, RunningGateway
from support.regclient import MANIFEST_TYPE, SERVICE, RegistryClient

REPOSITORY = "myteam/ops-scenario"
PUBLIC_MISSING = "library/ops-missing"
LAYER = b"ops scenario layer " * 512
WRONG_PASSWORDS = ("alice-wrong-3f9c", "mallory-pw-77a1", "eve-guess-1", "eve-guess-2",
                   "eve-guess-3", "eve-guess-4")
GARBAGE_BEARER = "not-a-real-token-5b1e9d"
GARBAGE_REFRESH = "not-a-refresh-token-0c4a2f"


@dataclass
class Scenario:
    client: RegistryClient
    gateway: RunningGateway
    manifest_digest: str
    pulled_bytes: int
    secrets: list[str] = field(default_factory=list)

    @property
    def audit_path(self) -> Path:
        return Path(self.gateway.config["audit"]["file"])

    def audit_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.audit_path.read_text().splitlines()]

    def metrics_text(self) -> str:
        answer = self.client.request("GET", "/metrics")
        assert answer.status == 200
        return answer.body.decode()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a text exposition by (name, labels)."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, frozenset(labels.items())), 0.0)


def run_scenario(client: RegistryClient, gateway: RunningGateway) -> Scenario:
    alice = PASSWORDS["alice"]
    # alice pushes an image, pulls it back, then deletes it by digest.
    push = client.bearer_for("alice", alice, f"repository:{REPOSITORY}:pull,push")
    digest = client.push_image(REPOSITORY, "1", LAYER, push)
    pulled = client.pull_image(REPOSITORY, "1", push)

    # Denials: anonymous pull of a private repository; bob (no rights) by token and by Basic.
    assert client.request("GET", f"/v2/{REPOSITORY}/manifests/1",
                          {"Accept": MANIFEST_TYPE}).status == 401
    bob = client.bearer_for("bob", PASSWORDS["bob"], f"repository:{REPOSITORY}:pull,push")
    assert client.request("PUT", f"/v2/{REPOSITORY}/manifests/2",
                          {**bob, "Content-Type": MANIFEST_TYPE}, b"{}").status == 401
    assert client.request("GET", f"/v2/{REPOSITORY}/tags/list",
                          basic("bob", PASSWORDS["bob"])).status == 401
    # A public repository anyone may pull, which does not exist upstream.
    assert client.request("GET", f"/v2/{PUBLIC_MISSING}/manifests/latest").status == 404

    # Failed logins, one per reason.
    assert client.token([], "alice", WRONG_PASSWORDS[0]).status == 401  # bad_password
    assert client.token([], "mallory", WRONG_PASSWORDS[1]).status == 401  # unknown_user
    assert client.token([], "dave", PASSWORDS["dave"]).status == 401  # disabled
    assert client.token([], "old-bot", PASSWORDS["old-bot"]).status == 401  # expired
    assert client.request("GET", "/v2/", bearer(GARBAGE_BEARER)).status == 401  # bad_token
    form = urlencode({"grant_type": "refresh_token", "refresh_token": GARBAGE_REFRESH,
                      "service": SERVICE, "client_id": "ops"}).encode()
    assert client.request("POST", "/token", {"Content-Type": "application/x-www-form-urlencoded"},
                          form).status == 401  # bad_token
    # Three wrong passwords lock eve out (max_failures: 3); the fourth attempt gets 429.
    for password in WRONG_PASSWORDS[2:5]:
        assert client.token([], "eve", password).status == 401
    locked = client.token([], "eve", WRONG_PASSWORDS[5])
    assert locked.status == 429, locked

    delete = client.bearer_for("alice", alice, f"repository:{REPOSITORY}:delete")
    answer = client.request("DELETE", f"/v2/{REPOSITORY}/manifests/{digest}", delete)
    assert answer.status == 202, answer

    secrets = [*PASSWORDS.values(), *WRONG_PASSWORDS, GARBAGE_BEARER, GARBAGE_REFRESH,
               *client.tokens]
    secrets += [base64.b64encode(f"{u}:{p}".encode()).decode() for u, p in PASSWORDS.items()]
    return Scenario(client, gateway, digest, pulled, secrets)
