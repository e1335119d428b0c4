"""Issue 11, defect 4: for a caller the config allows, the gateway is never stricter than the
registry it protects, and where it refuses, it refuses the way a token-auth distribution would.

What distribution 2.8.2 itself answers (with `auth: token`) is recorded, request and response,
in docs/protocol-parity.md; these tests hold the gateway to it:
- `manifests/.INVALID_MANIFEST_NAME` (a tag outside the grammar, the OCI conformance suite's
  "nonexistent manifest") is a 404 there (mux finds no route) and must be a 404 here, in the
  registry's JSON (MANIFEST_UNKNOWN), for a caller who may pull;
- a cross-repository mount with a token naming only the target, by a caller the config lets
  pull the source, is a 401 `insufficient_scope` whose one challenge names both scopes,
  `scope="repository:DST:pull,push repository:SRC:pull"` (distribution's order of resources and
  actions varies, so they are compared as sets); with a token for both it mounts (201).
"""

from __future__ import annotations

import hashlib
import json
from urllib.parse import urlsplit

import pytest
from support import Docker, Dockerd, Upstream
from support.credentials import basic_value
from support.gateway import PASSWORDS, RunningGateway, push_as
from support.wire import Answer, exchange, is_registry_error, request

SERVICE = "gateway.test"
INVALID = ".INVALID_MANIFEST_NAME"


def seed_blob_upstream(upstream: Upstream, repository: str, data: bytes) -> str:
    """A blob pushed straight into the registry; its digest."""
    status, headers, _ = upstream.request("POST", f"/v2/{repository}/blobs/uploads/", b"")
    assert status == 202, status
    location = urlsplit(headers["Location"])
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    status, _, _ = upstream.request("PUT", f"{location.path}?{location.query}&digest={digest}",
                                    data, {"Content-Type": "application/octet-stream"})
    assert status == 201, status
    return digest


async def call(gateway: RunningGateway, method: str, target: str,
               headers: list[tuple[str, str]], body: bytes = b"") -> Answer:
    answer = await exchange(gateway.port, request(method, target, headers, body,
                                                  length=method in ("POST", "PUT", "PATCH")))
    assert answer is not None, (method, target)
    return answer


async def token(gateway: RunningGateway, user: str, *scopes: str) -> tuple[str, str]:
    query = "&".join([f"service={SERVICE}", *(f"scope={s}" for s in scopes)])
    answer = await call(gateway, "GET", f"/token?{query}", [("Authorization", basic_value(user))])
    assert answer.status == 200, answer
    return ("Authorization", "Bearer " + json.loads(answer.body)["token"])


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("how", ["basic", "token"])
async def test_an_impossible_tag_is_unknown_to_a_caller_who_may_pull(
        shared_gateway: RunningGateway, method: str, how: str) -> None:
    target = f"/v2/library/parity/manifests/{INVALID}"
    credentials = ("Authorization", basic_value("alice")) if how == "basic" else await token(
        shared_gateway, "alice", "repository:library/parity:pull")
    answer = await call(shared_gateway, method, target, [credentials])
    assert answer.status == 404, answer
    if method == "GET":
        assert is_registry_error(answer) and answer.error_code() == "MANIFEST_UNKNOWN", answer


async def test_an_impossible_tag_is_never_written(shared_gateway: RunningGateway) -> None:
    """Not a read: assigning a name no tag may have stays refused (passes today)."""
    answer = await call(shared_gateway, "PUT", f"/v2/myteam/parity/manifests/{INVALID}",
                        [("Authorization", basic_value("alice")),
                         ("Content-Type", "application/json")], b"{}")
    assert 400 <= answer.status < 500, answer


def challenge_scopes(answer: Answer) -> dict[str, set[str]]:
    """The one Bearer challenge's scope, as {repository: actions}."""
    [header] = answer.all("WWW-Authenticate")
    assert header.startswith("Bearer "), answer
    scope = header.split('scope="', 1)[1].split('"', 1)[0]
    found: dict[str, set[str]] = {}
    for resource in scope.split(" "):
        kind, name, actions = resource.split(":")
        assert kind == "repository", header
        found[name] = set(actions.split(","))
    return found


async def test_a_mount_with_a_token_for_the_target_only_is_challenged(
        shared_gateway: RunningGateway, registry_upstream_session: Upstream) -> None:
    digest = seed_blob_upstream(registry_upstream_session, "library/mount-src", b"shared layer")
    target = f"/v2/myteam/mount-dst/blobs/uploads/?mount={digest}&from=library/mount-src"
    only_target = await token(shared_gateway, "alice", "repository:myteam/mount-dst:pull,push")
    answer = await call(shared_gateway, "POST", target, [only_target])
    assert answer.status == 401, answer
    assert 'error="insufficient_scope"' in (answer.header("WWW-Authenticate") or ""), answer
    assert challenge_scopes(answer) == {"myteam/mount-dst": {"pull", "push"},
                                        "library/mount-src": {"pull"}}
    both = await token(shared_gateway, "alice", "repository:myteam/mount-dst:pull,push",
                       "repository:library/mount-src:pull")
    mounted = await call(shared_gateway, "POST", target, [both])
    assert mounted.status == 201, mounted
    assert mounted.header("Docker-Content-Digest") == digest


async def test_a_mount_with_both_scopes_mounts(shared_gateway: RunningGateway,
                                               registry_upstream_session: Upstream) -> None:
    """The retry a client makes after the challenge (passes today)."""
    digest = seed_blob_upstream(registry_upstream_session, "library/mount-src2", b"layer two")
    both = await token(shared_gateway, "alice", "repository:myteam/mount-dst2:pull,push",
                       "repository:library/mount-src2:pull")
    answer = await call(shared_gateway, "POST",
                        f"/v2/myteam/mount-dst2/blobs/uploads/?mount={digest}"
                        "&from=library/mount-src2", [both])
    assert answer.status == 201, answer


async def test_a_mount_from_a_source_the_config_denies_stays_a_plain_upload(
        shared_gateway: RunningGateway, registry_upstream_session: Upstream) -> None:
    """Nobody is challenged for a scope they would never get: still a 202 (passes today)."""
    digest = seed_blob_upstream(registry_upstream_session, "secret/mount-private", b"private")
    only_target = await token(shared_gateway, "alice", "repository:myteam/mount-dst3:pull,push")
    answer = await call(shared_gateway, "POST",
                        f"/v2/myteam/mount-dst3/blobs/uploads/?mount={digest}"
                        "&from=secret/mount-private", [only_target])
    assert answer.status == 202, answer


def test_docker_push_mounts_a_layer_from_a_repository_the_user_may_pull(
        shared_gateway: RunningGateway, dockerd: Dockerd, busybox_image: str,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """carol pushes library/mount-base; alice (who may pull it, not push it) pushes the same
    image to myteam/: the daemon knows where the layer is and mounts it."""
    carol = dockerd.client(tmp_path_factory.mktemp("carol-docker"))
    push_as(carol, shared_gateway, "carol", busybox_image,
            f"{shared_gateway.host}/library/mount-base:1")
    alice: Docker = dockerd.client(tmp_path_factory.mktemp("alice-docker"))
    alice.login(shared_gateway.host, "alice", PASSWORDS["alice"])
    ref = f"{shared_gateway.host}/myteam/mounted:1"
    alice.run("tag", busybox_image, ref)
    pushed = alice.run("push", ref)
    alice.run("rmi", ref)
    assert "Mounted from library/mount-base" in pushed.stdout, pushed.stdout
