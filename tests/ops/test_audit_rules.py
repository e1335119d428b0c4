"""Issue 11, defect 5: every decision's audit line names its rule (contract, "Audit and decisions,
to the last line").

- A /v2/ request refused because its token lacks an action is decided against the current config
  too, and its line names that rule (a docker client is always refused that way).
- /token writes one line per requested scope: asked, granted, and what decided each action.
- A line's `action` is what the route exists for: `push` for uploads and manifest PUTs (even when
  it was pull that failed), `delete` for DELETE, `pull` otherwise.

Rule 0 of the shared test config is `myteam/*` ("the team's own images"), rule 1 `library/**`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import Upstream, free_port
from support.credentials import basic, bearer
from support.gateway import PASSWORDS, RunningGateway, running_gateway
from support.ops import ops_config
from support.regclient import MANIFEST_TYPE, RegistryClient

TEAM_RULE, TEAM_COMMENT = 0, "the team's own images"


def audit(gateway: RunningGateway) -> list[dict[str, Any]]:
    path = Path(gateway.config["audit"]["file"])
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def access_lines(gateway: RunningGateway, repository: str) -> list[dict[str, Any]]:
    return [a for a in audit(gateway) if a.get("event") == "access"
            and a.get("repository") == repository]


@pytest.fixture(scope="module")
def gateway(registry_upstream_session: Upstream,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """One gateway for the module: every test uses repository names of its own."""
    port, directory = free_port(), tmp_path_factory.mktemp("audit-rules")
    with running_gateway(ops_config(registry_upstream_session.url, port, directory), directory,
                         port) as running:
        yield running


@pytest.mark.parametrize(("user", "repository"), [("bob", "myteam/denied"),
                                                   ("alice", "myteam/other")])
def test_a_denial_for_a_token_names_the_rule(gateway: RunningGateway, user: str,
                                             repository: str) -> None:
    """Issue 11 saw rule_index null here; the restructured code already names it (passes)."""
    client = RegistryClient(gateway.port)
    # As docker does: a token for the scope it asks (bob: granted nothing; alice: another
    # repository), then the request with it.
    asked = repository if user == "bob" else "myteam/mine"
    token = client.bearer_for(user, PASSWORDS[user], f"repository:{asked}:pull")
    answer = client.request("GET", f"/v2/{repository}/manifests/latest", token)
    assert answer.status == 401
    [line] = access_lines(gateway, repository)
    assert line["result"] == "deny" and line["action"] == "pull"
    assert line["rule_index"] == TEAM_RULE, line
    assert line["rule_comment"] == TEAM_COMMENT, line


def test_a_denial_where_no_rule_matches_says_so(gateway: RunningGateway) -> None:
    """No rule to name: the line says so (passes today)."""
    client = RegistryClient(gateway.port)
    token = client.bearer_for("bob", PASSWORDS["bob"], "repository:nowhere/x:pull")
    assert client.request("GET", "/v2/nowhere/x/manifests/1", token).status == 401
    [line] = access_lines(gateway, "nowhere/x")
    assert line["rule_index"] is None and "no rule matched" in line["reason"], line


def token_lines(gateway: RunningGateway, prefix: str) -> list[dict[str, Any]]:
    return [a for a in audit(gateway) if a.get("event") == "token"
            and str(a.get("repository", "")).startswith(prefix)]


def test_token_writes_one_line_per_scope_with_what_decided(gateway: RunningGateway) -> None:
    client = RegistryClient(gateway.port)
    scopes = ["repository:myteam/tk1:pull,push", "repository:library/tk1:pull,push",
              "repository:nowhere/tk1:pull"]
    assert client.token(scopes, "alice", PASSWORDS["alice"]).status == 200
    lines = {a["repository"]: a for a in audit(gateway)
             if a.get("event") == "token" and a["repository"].endswith("/tk1")}
    assert set(lines) == {"myteam/tk1", "library/tk1", "nowhere/tk1"}, lines
    team, public, nowhere = lines["myteam/tk1"], lines["library/tk1"], lines["nowhere/tk1"]
    assert team["user"] == "alice"
    assert team["requested"] == ["pull", "push"] and team["granted"] == ["pull", "push"]
    assert public["requested"] == ["pull", "push"] and public["granted"] == ["pull"]
    assert nowhere["granted"] == []
    assert {a: d["rule_index"] for a, d in team["decisions"].items()} == {"pull": 0, "push": 0}
    assert public["decisions"]["push"]["result"] == "deny"
    assert public["decisions"]["push"]["rule_index"] == 1
    assert nowhere["decisions"]["pull"]["rule_index"] is None
    assert "no rule matched" in nowhere["decisions"]["pull"]["reason"]


def test_token_lines_name_the_account_state(gateway: RunningGateway) -> None:
    client = RegistryClient(gateway.port)
    assert client.token(["repository:myteam/tk2:pull"], "carol", PASSWORDS["carol"]).status == 200
    [line] = token_lines(gateway, "myteam/tk2")
    assert line["granted"] == ["pull"]
    assert "admin" in line["decisions"]["pull"]["reason"], line


def test_anonymous_token_lines(gateway: RunningGateway) -> None:
    assert RegistryClient(gateway.port).token(["repository:myteam/tk3:pull"]).status == 200
    [line] = token_lines(gateway, "myteam/tk3")
    assert line["user"] == "anonymous" and line["granted"] == []
    assert line["decisions"]["pull"]["rule_index"] == TEAM_RULE


def routes(repository: str) -> dict[str, tuple[str, str, bytes]]:
    return {
        "start upload": ("POST", f"/v2/{repository}/blobs/uploads/", b""),
        "manifest PUT": ("PUT", f"/v2/{repository}/manifests/1", b"{}"),
        "PATCH upload": ("PATCH", f"/v2/{repository}/blobs/uploads/abcd", b"x"),
        "finish upload": ("PUT", f"/v2/{repository}/blobs/uploads/abcd?digest=sha256:" + "a" * 64,
                          b"x"),
        "manifest DELETE": ("DELETE", f"/v2/{repository}/manifests/sha256:" + "a" * 64, b""),
        "blob DELETE": ("DELETE", f"/v2/{repository}/blobs/sha256:" + "a" * 64, b""),
        "manifest GET": ("GET", f"/v2/{repository}/manifests/1", b""),
    }


@pytest.mark.parametrize(("route", "action"), [
    ("start upload", "push"),
    ("manifest PUT", "push"),
    ("PATCH upload", "push"),
    ("finish upload", "push"),
    ("manifest DELETE", "delete"),
    ("blob DELETE", "delete"),
    ("manifest GET", "pull"),
])
@pytest.mark.parametrize("how", ["basic", "token"])
def test_a_denied_write_is_audited_with_its_action(gateway: RunningGateway, route: str,
                                                   action: str, how: str) -> None:
    client = RegistryClient(gateway.port)
    repository = f"myteam/{route.replace(' ', '-').lower()}-{how}"
    auth = basic("bob", PASSWORDS["bob"]) if how == "basic" else bearer(
        client.token([f"repository:{repository}:pull,push,delete"], "bob",
                     PASSWORDS["bob"]).json()["token"])
    method, target, body = routes(repository)[route]
    answer = client.request(method, target, {**auth, "Content-Type": MANIFEST_TYPE}, body)
    assert answer.status in (401, 403), answer
    [line] = access_lines(gateway, repository)
    assert line["result"] == "deny"
    assert line["action"] == action, line
