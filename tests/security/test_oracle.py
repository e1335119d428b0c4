"""No existence oracle: a private repository and a missing one are answered byte for byte alike.

Every route shape x every identity without access: the answers for two existing repositories
(one private under a rule, one that no rule matches) and two missing ones (same rule, no rule)
must be identical apart from the repository name the client sent (Date and X-Request-Id aside),
and the registry must not even have been asked.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from support import Upstream, free_port
from support.content_cache import FULL_ACCEPT, warm
from support.credentials import basic, bearer
from support.gateway import RunningGateway, running_gateway
from support.issuer import FederationIssuer, start_issuer
from support.security import (
    ALL_PASSWORDS,
    MANIFEST_TYPE,
    SERVICE,
    RawResponse,
    SeededImage,
    fetch_token,
    raw_request,
    security_config,
    seed_image,
)

# All 14 characters long, so even Content-Length cannot tell them apart.
PRESENT, NORULE_PRESENT = "secret/present", "norule/present"
MISSING, NORULE_MISSING = "secret/missing", "norule/missing"
NAMES = (PRESENT, NORULE_PRESENT, MISSING, NORULE_MISSING)
ALL_ACTIONS = "pull,push,delete"

Headers = dict[str, str]


@dataclass(frozen=True)
class Shape:
    label: str
    method: str
    path: str  # with {name}
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


def shapes(image: SeededImage) -> list[Shape]:
    manifest, layer = image.manifest_digest, image.layer_digest
    upload = image.upload_path.replace(image.repository, "{name}")
    octets = (("Content-Type", "application/octet-stream"),)
    return [
        Shape("manifest GET by tag", "GET", "/v2/{name}/manifests/v1",
              (("Accept", MANIFEST_TYPE),)),
        Shape("manifest HEAD by tag", "HEAD", "/v2/{name}/manifests/v1",
              (("Accept", MANIFEST_TYPE),)),
        Shape("manifest GET by digest", "GET", f"/v2/{{name}}/manifests/{manifest}"),
        Shape("manifest HEAD by digest", "HEAD", f"/v2/{{name}}/manifests/{manifest}"),
        Shape("manifest HEAD, unknown tag", "HEAD", "/v2/{name}/manifests/nope"),
        Shape("manifest PUT", "PUT", "/v2/{name}/manifests/v2",
              (("Content-Type", MANIFEST_TYPE),), image.manifest),
        Shape("manifest DELETE", "DELETE", f"/v2/{{name}}/manifests/{manifest}"),
        Shape("blob GET", "GET", f"/v2/{{name}}/blobs/{layer}"),
        Shape("blob HEAD", "HEAD", f"/v2/{{name}}/blobs/{layer}"),
        Shape("blob GET, range", "GET", f"/v2/{{name}}/blobs/{layer}", (("Range", "bytes=0-3"),)),
        Shape("blob DELETE", "DELETE", f"/v2/{{name}}/blobs/{layer}"),
        Shape("tags list", "GET", "/v2/{name}/tags/list"),
        Shape("tags list paged", "GET", "/v2/{name}/tags/list?n=1&last=a"),
        Shape("upload POST", "POST", "/v2/{name}/blobs/uploads/"),
        Shape("upload POST monolithic", "POST", f"/v2/{{name}}/blobs/uploads/?digest={layer}",
              octets, b"layer"),
        Shape("upload POST mount", "POST",
              f"/v2/{{name}}/blobs/uploads/?mount={layer}&from={PRESENT}"),
        Shape("upload PATCH", "PATCH", upload, octets, b"more"),
        Shape("upload PUT", "PUT", upload + f"&digest={layer}", octets, b""),
        Shape("upload GET", "GET", upload),
        Shape("upload HEAD", "HEAD", upload),
        Shape("upload DELETE", "DELETE", upload),
        Shape("referrers", "GET", f"/v2/{{name}}/referrers/{manifest}"),
        Shape("referrers filtered", "GET",
              f"/v2/{{name}}/referrers/{manifest}?artifactType=application%2Fx"),
    ]


Identity = Callable[[int, str], Awaitable[Headers]]


def _password(user: str, password: str | None = None) -> Identity:
    async def headers(port: int, name: str) -> Headers:
        return basic(user, ALL_PASSWORDS[user] if password is None else password)
    return headers


def _token(user: str | None) -> Identity:
    # A token asked for everything on the name, as a client that pushes and deletes would.
    async def headers(port: int, name: str) -> Headers:
        credentials = basic(user, ALL_PASSWORDS[user]) if user else {}
        body = await fetch_token(port, credentials, f"repository:{name}:{ALL_ACTIONS}")
        return bearer(body["token"])
    return headers


async def _nothing(port: int, name: str) -> Headers:
    return {}


async def _garbage(port: int, name: str) -> Headers:
    return bearer("not.a.token")


IDENTITIES: dict[str, Identity] = {
    "anonymous": _nothing,
    "anonymous token": _token(None),
    "bob password": _password("bob"),
    "bob token": _token("bob"),
    "delete-only eve password": _password("eve"),
    "delete-only eve token": _token("eve"),
    "pusher pat token": _token("pat"),
    "alice token (other team)": _token("alice"),
    "wrong password": _password("alice", "wrong"),
    "unknown user": _password("mallory", "whatever"),
    "disabled dave": _password("dave"),
    "garbage token": _garbage,
}


WORKLOAD = "ci-release"  # workload:ci-release may push drop/* (pat's), nothing of secret/**
WORKLOAD_IDENTITIES = ["workload token", "workload ID token as Basic on /v2/"]


def _workload(issuer: FederationIssuer, as_token: bool) -> Identity:
    # One ID token throughout, as a CI job has: a refused one counts once toward the lockout.
    id_token = issuer.mint({"aud": SERVICE, "exp": int(time.time()) + 3600})

    async def headers(port: int, name: str) -> Headers:
        credentials = basic(WORKLOAD, id_token)
        if not as_token:
            return credentials  # refused: federation is a /token login only
        body = await fetch_token(port, credentials, f"repository:{name}:{ALL_ACTIONS}")
        return bearer(body["token"])
    return headers


@pytest.fixture(scope="module")
def workload_issuer() -> Iterator[FederationIssuer]:
    issuer = start_issuer()
    yield issuer
    issuer.stop()


@pytest.fixture(scope="module", params=["cache cold", "cache warm"])
def shared_gateway(request: pytest.FixtureRequest, registry_upstream_session: Upstream,
                   tmp_path_factory: pytest.TempPathFactory,
                   token_key: tuple[Path, ec.EllipticCurvePrivateKey],
                   workload_issuer: FederationIssuer,
                   images: dict[str, SeededImage]) -> Iterator[RunningGateway]:
    """The security gateway (conftest.py's) with a federation entry for the workload caller;
    "cache warm": the owners' pulls filled the content cache first, which must change nothing."""
    port = free_port()
    config = security_config(registry_upstream_session.url, port, token_key[0])
    config["federation"] = [{"name": WORKLOAD, "issuer": workload_issuer.url, "audience": SERVICE,
                             "claims": {"repository_owner_id": "1234567"}}]
    config["repositories"][-1]["push"].append(f"workload:{WORKLOAD}")
    with running_gateway(config, tmp_path_factory.mktemp("gateway"), port) as gateway:
        if request.param == "cache warm":
            for name, owner in ((PRESENT, "sam"), (NORULE_PRESENT, "carol")):  # carol: admin
                image = images[name]
                warm(gateway.url, [f"/v2/{name}/manifests/v1",
                                   f"/v2/{name}/manifests/{image.manifest_digest}",
                                   f"/v2/{name}/blobs/{image.layer_digest}"],
                     basic(owner, ALL_PASSWORDS[owner]))
        yield gateway


@pytest.fixture(scope="module")
def identities(workload_issuer: FederationIssuer) -> dict[str, Identity]:
    return {**IDENTITIES, WORKLOAD_IDENTITIES[0]: _workload(workload_issuer, True),
            WORKLOAD_IDENTITIES[1]: _workload(workload_issuer, False)}


@pytest.fixture(scope="module")
def images(registry_upstream_session: Upstream) -> dict[str, SeededImage]:
    return {name: seed_image(registry_upstream_session.url, name, "v1", name)
            for name in (PRESENT, NORULE_PRESENT)}


async def _answers(gateway: RunningGateway, shape: Shape, identity: Identity
                   ) -> dict[str, RawResponse]:
    answers = {}
    for name in NAMES:
        headers = list(shape.headers) + list((await identity(gateway.port, name)).items())
        answers[name] = await raw_request(gateway.port, shape.method,
                                          shape.path.format(name=name), headers, shape.body)
    return answers


SHAPE_LABELS = [s.label for s in shapes(SeededImage("r", "t", b"", "d", "d", "u", "/p?q"))]


@pytest.mark.parametrize("identity", [*IDENTITIES, *WORKLOAD_IDENTITIES])
@pytest.mark.parametrize("shape_label", SHAPE_LABELS)
async def test_private_and_missing_are_answered_alike(
        shared_gateway: RunningGateway, registry_upstream_session: Upstream,
        images: dict[str, SeededImage], identities: dict[str, Identity], shape_label: str,
        identity: str) -> None:
    shape = next(s for s in shapes(images[PRESENT]) if s.label == shape_label)
    log_before = registry_upstream_session.log_path.stat().st_size
    answers = await _answers(shared_gateway, shape, identities[identity])
    reference = answers[PRESENT]
    assert reference.status == 401, reference
    for name, answer in answers.items():
        assert answer.comparable([name]) == reference.comparable([PRESENT]), (name, answer)
    # Decided before the upstream was asked: nothing reached the registry, so timing can't differ.
    assert registry_upstream_session.log_path.stat().st_size == log_before


async def test_the_denial_is_the_one_docker_reads_as_pull_access_denied(
        shared_gateway: RunningGateway, images: dict[str, SeededImage]) -> None:
    headers = await _token("bob")(shared_gateway.port, MISSING)
    answer = await raw_request(shared_gateway.port, "GET", f"/v2/{MISSING}/manifests/v1", headers)
    assert answer.header("WWW-Authenticate") == (
        f'Bearer realm="{shared_gateway.url}/token",service="{SERVICE}",'
        f'scope="repository:{MISSING}:pull",error="insufficient_scope"')
    assert answer.json() == {"errors": [{"code": "DENIED",
                                         "message": "requested access to the resource is denied"}]}


async def test_sanity_the_owner_does_see_the_difference(
        shared_gateway: RunningGateway, registry_upstream_session: Upstream,
        images: dict[str, SeededImage]) -> None:
    """The suite above would pass vacuously if nothing were there, or if the registry's log
    stayed empty anyway; sam sees the difference, and his requests reach the registry's log."""
    log_before = registry_upstream_session.log_path.stat().st_size
    headers = basic("sam", ALL_PASSWORDS["sam"])
    present = await raw_request(shared_gateway.port, "GET", f"/v2/{PRESENT}/manifests/v1",
                                [("Accept", MANIFEST_TYPE), *headers.items()])
    missing = await raw_request(shared_gateway.port, "GET", f"/v2/{MISSING}/manifests/v1",
                                [("Accept", MANIFEST_TYPE), *headers.items()])
    assert (present.status, missing.status) == (200, 404)
    assert registry_upstream_session.log_path.stat().st_size > log_before


async def test_a_digest_only_a_private_repository_holds_is_unknown_elsewhere(
        shared_gateway: RunningGateway, registry_upstream_session: Upstream,
        images: dict[str, SeededImage]) -> None:
    """alice may pull myteam/*; the digests exist only in secret/present (cached for sam when
    the cache is warm): she gets the registry's own 404 for the name she asked."""
    image = images[PRESENT]
    for kind, digest in (("manifests", image.manifest_digest), ("blobs", image.layer_digest)):
        path = f"/v2/myteam/oracle-other/{kind}/{digest}"
        answer = await raw_request(shared_gateway.port, "GET", path,
                                   {**basic("alice"), "Accept": FULL_ACCEPT})
        direct = await raw_request(registry_upstream_session.port, "GET", path,
                                   {"Accept": FULL_ACCEPT})
        assert (answer.status, answer.body) == (404, direct.body), answer


TOKEN_USERS = [None, "bob", "eve", "pat", "alice", "frank"]


@pytest.mark.parametrize("user", TOKEN_USERS)
@pytest.mark.parametrize("actions", ["pull", "push", "delete", "*", ALL_ACTIONS, "pull,push"])
async def test_token_grants_are_the_same_for_private_and_missing(
        shared_gateway: RunningGateway, images: dict[str, SeededImage], user: str | None,
        actions: str) -> None:
    credentials = basic(user, ALL_PASSWORDS[user]) if user else {}
    seen = []
    for name in NAMES:
        body = await fetch_token(shared_gateway.port, credentials, f"repository:{name}:{actions}")
        claims = jwt.decode(body["token"], options={"verify_signature": False})
        seen.append((sorted(body), claims["access"], claims["sub"], body["expires_in"]))
    assert seen[0][1] == []
    assert all(entry == seen[0] for entry in seen), seen


@pytest.mark.parametrize("user", ["bob", "eve", "pat"])
async def test_oauth_grants_are_the_same_for_private_and_missing(
        shared_gateway: RunningGateway, images: dict[str, SeededImage], user: str) -> None:
    seen = []
    for name in NAMES:
        form = (f"grant_type=password&username={user}&password={ALL_PASSWORDS[user]}"
                f"&service={SERVICE}&client_id=test&scope=repository%3A{name}%3A{ALL_ACTIONS}")
        answer = await raw_request(shared_gateway.port, "POST", "/token",
                                   {"Content-Type": "application/x-www-form-urlencoded"},
                                   form.encode())
        assert answer.status == 200
        body = answer.json()
        claims = jwt.decode(body["access_token"], options={"verify_signature": False})
        seen.append((body["scope"], claims["access"]))
    assert seen == [("", [])] * len(NAMES)
