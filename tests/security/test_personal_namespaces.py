"""Personal namespaces through the running gateway: `home/{user}/**` is each caller's own.

alice pushes and pulls `home/alice/x`; to bob (and anonymous) it is answered exactly as a
repository that does not exist, on the registry API and at /token; the catalog lists each
caller's home only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import jwt
import pytest
from support import Upstream, free_port, start_registry
from support.credentials import basic
from support.gateway import PASSWORDS, RunningGateway, base_config, running_gateway
from support.security import MANIFEST_TYPE, fetch_token, image_manifest, push_blob, raw_request

# The same length, so not even Content-Length tells them apart.
MINE, MISSING, NO_RULE = "home/alice/x", "home/alice/q", "nohome/al/x"
SEEDED = ["home/bob/app", "home/alicex/app", "homeless/alice", "other/alice/x"]


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    registry = start_registry(tmp_path_factory.mktemp("homes-registry"))
    registry.seed(SEEDED)
    yield registry
    registry.close()


@pytest.fixture(scope="module")
def gateway(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[RunningGateway]:
    port = free_port()
    config = base_config(upstream.url, port)
    config["repositories"].insert(0, {"match": "home/{user}/**", "pull": ["authenticated"],
                                      "push": ["authenticated"], "comment": "own home"})
    with running_gateway(config, tmp_path_factory.mktemp("homes-gateway"), port) as running:
        yield running


def as_user(user: str | None) -> dict[str, str]:
    return basic(user, PASSWORDS[user]) if user else {}


@pytest.fixture(scope="module")
def pushed(gateway: RunningGateway) -> bytes:
    return asyncio.run(push_home(gateway))


async def push_home(gateway: RunningGateway) -> bytes:
    """alice's image in her home, pushed through the gateway."""
    alice = as_user("alice")
    config, layer = b'{"architecture":"amd64","os":"linux"}', b"alice's layer"
    for blob in (config, layer):
        await push_blob(gateway.port, MINE, blob, alice)
    manifest = image_manifest(config, layer)
    put = await raw_request(gateway.port, "PUT", f"/v2/{MINE}/manifests/v1",
                            {**alice, "Content-Type": MANIFEST_TYPE}, manifest)
    assert put.status == 201, put
    return manifest


async def test_alice_pushes_and_pulls_her_home(gateway: RunningGateway, pushed: bytes) -> None:
    got = await raw_request(gateway.port, "GET", f"/v2/{MINE}/manifests/v1",
                            {**as_user("alice"), "Accept": MANIFEST_TYPE})
    assert (got.status, got.body) == (200, pushed)
    tags = await raw_request(gateway.port, "GET", f"/v2/{MINE}/tags/list", as_user("alice"))
    assert tags.json() == {"name": MINE, "tags": ["v1"]}


SHAPES = [("GET", "/v2/{name}/manifests/v1"), ("HEAD", "/v2/{name}/manifests/v1"),
          ("GET", "/v2/{name}/tags/list"), ("POST", "/v2/{name}/blobs/uploads/"),
          ("DELETE", "/v2/{name}/manifests/v1")]


@pytest.mark.parametrize("user", ["bob", "ci-bot", None])
@pytest.mark.parametrize(("method", "path"), SHAPES)
async def test_another_home_is_answered_as_a_missing_repository(
        gateway: RunningGateway, pushed: bytes, user: str | None, method: str, path: str) -> None:
    answers = {name: await raw_request(gateway.port, method, path.format(name=name),
                                       {**as_user(user), "Accept": MANIFEST_TYPE})
               for name in (MINE, MISSING, NO_RULE)}
    reference = answers[MINE].comparable([MINE])
    assert reference[0] == 401, answers[MINE]
    for name, answer in answers.items():
        assert answer.comparable([name]) == reference, (name, answer)


@pytest.mark.parametrize("user", ["bob", None])
async def test_tokens_for_another_home_grant_nothing(gateway: RunningGateway, pushed: bytes,
                                                     user: str | None) -> None:
    seen = []
    for name in (MINE, MISSING, NO_RULE):
        body = await fetch_token(gateway.port, as_user(user), f"repository:{name}:pull,push")
        seen.append(jwt.decode(body["token"], options={"verify_signature": False})["access"])
    assert seen == [[]] * 3
    own = await fetch_token(gateway.port, as_user("alice"), f"repository:{MINE}:pull,push")
    access = jwt.decode(own["token"], options={"verify_signature": False})["access"]
    assert access == [{"type": "repository", "name": MINE, "actions": ["pull", "push"]}]


@pytest.mark.parametrize(("user", "listed"), [
    ("alice", [MINE]),
    ("bob", ["home/bob/app"]),
    ("ci-bot", []),  # a service account has a home too, but nothing is in it
    (None, []),
    ("carol", sorted([MINE, *SEEDED], key=lambda n: n.replace("/", "\0"))),
])
async def test_the_catalog_lists_only_the_callers_home(
        gateway: RunningGateway, pushed: bytes, user: str | None, listed: list[str]) -> None:
    answer = await raw_request(gateway.port, "GET", "/v2/_catalog?n=100", as_user(user))
    assert answer.status == 200, answer
    assert answer.json() == {"repositories": listed}
