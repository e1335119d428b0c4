"""Federation: CI jobs log in with their platform's OIDC ID token (a GitHub-shaped issuer of the
test's own), real docker login + push + pull, and every forged or mismatched token refused."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from support import Docker, Upstream, free_port
from support.credentials import basic
from support.gateway import RunningGateway, base_config, running_gateway
from support.issuer import FederationIssuer, hs256_with_public_key, start_issuer, unsigned_token
from support.metrics import metric_value

ENTRY = "app-release"
CLAIMS = {"repository_owner_id": "1234567", "repository": "acme/app", "ref": "refs/heads/main"}
FEDERATION_METRIC = "registry_gateway_federation_logins_total"


@pytest.fixture(scope="module")
def issuers() -> Iterator[tuple[FederationIssuer, FederationIssuer, FederationIssuer]]:
    """The CI issuer, another issuer, and one that is down from the start."""
    main, other, down = start_issuer(), start_issuer(), start_issuer()
    down.stop()
    yield main, other, down
    main.stop()
    other.stop()


def federation_config(upstream: str, port: int, main: str, other: str, down: str) -> dict[str, Any]:
    config = base_config(upstream, port)
    # Failures lock a (name, client) out as for passwords; these tests fail on purpose, a lot.
    config["auth"] = {"lockout": {"max_failures": 1000, "window": 300, "cooldown": 300}}
    config["federation"] = [
        {"name": ENTRY, "issuer": main, "audience": "gateway.test", "claims": CLAIMS},
        # Same issuer, another repository: acme/app's token must not pass as this one.
        {"name": "other-release", "issuer": main, "audience": "gateway.test",
         "claims": {"repository_owner_id": "1234567", "repository": "acme/other"}},
        {"name": "far-release", "issuer": other, "audience": "gateway.test",
         "claims": {"repository_owner_id": "1234567", "repository": "acme/app"}},
        {"name": "down-release", "issuer": down, "audience": "gateway.test",
         "claims": {"repository_owner_id": "1234567"}},
    ]
    config["repositories"][:0] = [
        {"match": "ci/*", "push": [f"workload:{ENTRY}"], "comment": "release builds"},
        {"match": "authed/*", "pull": ["authenticated"], "comment": "any account"},
    ]
    return config


@pytest.fixture(scope="module")
def gateway(registry_upstream_session: Upstream, tmp_path_factory: pytest.TempPathFactory,
            issuers: tuple[FederationIssuer, FederationIssuer, FederationIssuer]
            ) -> Iterator[RunningGateway]:
    port = free_port()
    config = federation_config(registry_upstream_session.url, port,
                               *(issuer.url for issuer in issuers))
    with running_gateway(config, tmp_path_factory.mktemp("federation"), port) as running:
        yield running


@pytest.fixture(scope="module")
def issuer(issuers: tuple[FederationIssuer, FederationIssuer, FederationIssuer]) -> FederationIssuer:
    return issuers[0]


async def token(gateway: RunningGateway, user: str, password: str, *scopes: str,
                offline: bool = False) -> tuple[int, dict[str, Any]]:
    """GET /token with Basic credentials, as docker does without an identity token."""
    params = [("service", "gateway.test"), *(("scope", s) for s in scopes)]
    if offline:
        params.append(("offline_token", "true"))
    async with aiohttp.ClientSession() as session, session.get(
            f"{gateway.url}/token", params=params,
            headers=basic(user, password)) as resp:
        return resp.status, await resp.json(content_type=None)


def unverified(access_token: str) -> dict[str, Any]:
    return jwt.decode(access_token, options={"verify_signature": False})


def test_docker_login_push_pull_with_an_id_token(
        gateway: RunningGateway, issuer: FederationIssuer, docker: Docker, busybox_image: str) -> None:
    docker.login(gateway.host, ENTRY, issuer.mint())
    # No refresh token for a workload: docker keeps the (short-lived) ID token itself.
    assert "identitytoken" not in (docker.config_dir / "config.json").read_text()
    ref = f"{gateway.host}/ci/app:1"
    docker.run("tag", busybox_image, ref)
    docker.run("push", ref)
    docker.run("rmi", ref)
    docker.run("pull", ref)
    docker.run("rmi", ref)
    audit = gateway.log_text()
    assert '"kind":"workload"' in audit and f'"user":"{ENTRY}"' in audit


async def test_grant_no_refresh_token_and_no_longer_than_the_id_token(
        gateway: RunningGateway, issuer: FederationIssuer) -> None:
    exp = int(time.time()) + 90
    status, body = await token(gateway, ENTRY, issuer.mint({"exp": exp}),
                               "repository:ci/app:push,pull", offline=True)
    assert status == 200, body
    assert "refresh_token" not in body
    claims = unverified(body["token"])
    assert claims["exp"] <= exp and body["expires_in"] <= 90
    assert claims["kind"] == "workload" and claims["sub"] == ENTRY
    assert claims["access"] == [{"type": "repository", "name": "ci/app", "actions": ["pull", "push"]}]


async def test_password_grant_gives_no_refresh_token(
        gateway: RunningGateway, issuer: FederationIssuer) -> None:
    form = {"grant_type": "password", "username": ENTRY, "password": issuer.mint(),
            "service": "gateway.test", "scope": "repository:ci/app:pull", "access_type": "offline",
            "client_id": "docker"}
    async with aiohttp.ClientSession() as session, session.post(f"{gateway.url}/token",
                                                                data=form) as resp:
        body = await resp.json()
    assert resp.status == 200 and body["scope"] == "repository:ci/app:pull"
    assert "refresh_token" not in body


async def test_a_workload_is_not_authenticated(gateway: RunningGateway, issuer: FederationIssuer) -> None:
    status, body = await token(gateway, ENTRY, issuer.mint(), "repository:authed/x:pull")
    assert status == 200 and unverified(body["token"])["access"] == []


async def test_basic_on_v2_with_an_id_token_is_refused(
        gateway: RunningGateway, issuer: FederationIssuer) -> None:
    """Federation is a /token login only (the contract): no JWT check on every /v2/ request."""
    async with aiohttp.ClientSession() as session, session.get(
            f"{gateway.url}/v2/ci/app/tags/list",
            headers=basic(ENTRY, issuer.mint())) as resp:
        assert resp.status == 401


def _forged(issuer: FederationIssuer, other: FederationIssuer, case: str) -> tuple[str, str]:
    now = int(time.time())
    rsa = issuer.key("rsa")
    cases: dict[str, tuple[str, str]] = {
        "wrong audience": (ENTRY, issuer.mint({"aud": "someone-else"})),
        "wrong issuer claim": (ENTRY, issuer.mint({"iss": other.url})),
        "signed by another issuer": (ENTRY, other.mint({"iss": issuer.url})),
        "expired": (ENTRY, issuer.mint({"exp": now - 120, "iat": now - 600, "nbf": now - 600})),
        "nbf in the future": (ENTRY, issuer.mint({"nbf": now + 600})),
        "iat in the future": (ENTRY, issuer.mint({"iat": now + 600})),
        "alg none": (ENTRY, unsigned_token(issuer.github_claims(), {"kid": rsa.kid})),
        "HS256 with the public key": (ENTRY, hs256_with_public_key(issuer.github_claims(), rsa)),
        "claims do not match": (ENTRY, issuer.mint({"ref": "refs/heads/dev"})),
        "claim missing": (ENTRY, issuer.mint({"repository": None})),
        "claim not a string": (ENTRY, issuer.mint({"repository_owner_id": 1234567})),
        "glob-looking value": (ENTRY, issuer.mint({"repository": "acme/*"})),
        "valid token under another entry": ("other-release", issuer.mint()),
        "valid token under another issuer's entry": ("far-release", issuer.mint()),
        "unknown kid": (ENTRY, issuer.mint(headers={"kid": "nope"})),
        "not a JWT": (ENTRY, "not-a-token"),
        "empty": (ENTRY, ""),
        "signature of another token": (ENTRY, issuer.mint().rsplit(".", 1)[0] + "."
                                       + issuer.mint({"ref": "x"}).rsplit(".", 1)[1]),
    }
    return cases[case]


FORGED = ["wrong audience", "wrong issuer claim", "signed by another issuer", "expired",
          "nbf in the future", "iat in the future", "alg none", "HS256 with the public key",
          "claims do not match", "claim missing", "claim not a string", "glob-looking value",
          "valid token under another entry", "valid token under another issuer's entry",
          "unknown kid", "not a JWT", "empty", "signature of another token"]


@pytest.mark.parametrize("case", FORGED)
async def test_forged_or_mismatched_tokens_are_refused_with_401(
        gateway: RunningGateway, issuers: tuple[FederationIssuer, FederationIssuer, FederationIssuer],
        case: str) -> None:
    user, password = _forged(issuers[0], issuers[1], case)
    status, body = await token(gateway, user, password, "repository:ci/app:push,pull")
    assert status == 401, body
    assert body == {"errors": [{"code": "UNAUTHORIZED", "message": "incorrect username or password"}]}


async def test_refusals_are_counted_by_reason(gateway: RunningGateway, issuer: FederationIssuer) -> None:
    before = metric_value(gateway.url, FEDERATION_METRIC, {"result": "audience"})
    mismatched = metric_value(gateway.url, FEDERATION_METRIC, {"result": "claims_mismatch"})
    await token(gateway, ENTRY, issuer.mint({"aud": "x"}))
    await token(gateway, ENTRY, issuer.mint({"ref": "refs/tags/v1"}))
    assert metric_value(gateway.url, FEDERATION_METRIC, {"result": "audience"}) == before + 1
    assert metric_value(gateway.url, FEDERATION_METRIC, {"result": "claims_mismatch"}) == mismatched + 1


async def test_unknown_kid_flood_refetches_at_most_once_a_minute(
        gateway: RunningGateway, issuer: FederationIssuer) -> None:
    status, _ = await token(gateway, ENTRY, issuer.mint())  # keys cached
    assert status == 200
    fetches = issuer.jwks_fetches
    for _ in range(40):
        status, _ = await token(gateway, ENTRY, issuer.mint(headers={"kid": secrets.token_hex(6)}))
        assert status == 401
    assert issuer.jwks_fetches - fetches <= 1


async def test_issuer_down_without_cached_keys_is_503_unavailable(gateway: RunningGateway,
        issuers: tuple[FederationIssuer, FederationIssuer, FederationIssuer]) -> None:
    down = issuers[2]
    before = metric_value(gateway.url, FEDERATION_METRIC, {"result": "unavailable"})
    status, body = await token(gateway, "down-release", down.mint({"iss": down.url}),
                               "repository:ci/app:pull")
    assert status == 503
    assert body["errors"][0]["code"] == "UNAVAILABLE" and "token" not in body
    assert metric_value(gateway.url, FEDERATION_METRIC, {"result": "unavailable"}) == before + 1


async def test_issuer_down_with_cached_keys_still_logs_in(
        gateway: RunningGateway, issuer: FederationIssuer) -> None:
    assert (await token(gateway, ENTRY, issuer.mint()))[0] == 200
    issuer.stop()
    try:
        status, body = await token(gateway, ENTRY, issuer.mint(), "repository:ci/app:pull")
        assert status == 200 and unverified(body["token"])["access"]
        # An unknown kid cannot be looked up now: still a 401, never a 5xx.
        assert (await token(gateway, ENTRY, issuer.mint(headers={"kid": "gone"})))[0] == 401
    finally:
        issuer.start()


async def test_disabled_workload_is_refused_live_tokens_included(
        registry_upstream: Upstream, tmp_path: Path,
        issuers: tuple[FederationIssuer, FederationIssuer, FederationIssuer]) -> None:
    port = free_port()
    config = federation_config(registry_upstream.url, port, *(i.url for i in issuers))
    with running_gateway(config, tmp_path / "gw", port) as own:
        status, body = await token(own, ENTRY, issuers[0].mint(), "repository:ci/app:pull")
        assert status == 200
        live = body["token"]
        config["disabled_identities"] = [ENTRY.upper()]  # names compare case-insensitively
        own.reload(config, settle=1.0)
        assert (await token(own, ENTRY, issuers[0].mint()))[0] == 401
        async with aiohttp.ClientSession() as session, session.get(
                f"{own.url}/v2/ci/app/tags/list", headers={"Authorization": f"Bearer {live}"}) as resp:
            assert resp.status == 401


async def test_the_token_never_reaches_the_log(gateway: RunningGateway,
                                               issuer: FederationIssuer) -> None:
    secret = issuer.mint({"jti": "marker-" + secrets.token_hex(4)})
    assert (await token(gateway, ENTRY, secret, "repository:ci/app:pull"))[0] == 200
    assert (await token(gateway, ENTRY, secret + "x"))[0] == 401
    assert (await token(gateway, secret, "x"))[0] == 401  # a token typed as the username
    text = gateway.log_text()
    assert secret.rsplit(".", 1)[1] not in text and secret.split(".")[1] not in text
