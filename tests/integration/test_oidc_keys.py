"""IssuerKeys + verify_token against a real (in-process, GitHub-shaped) issuer over HTTP:
discovery, JWKS caching and refetch limits, outages, redirects, TLS, and forged tokens."""

from __future__ import annotations

import asyncio
import json
import secrets
import ssl
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm
from support.issuer import FederationIssuer, hs256_with_public_key, make_key, start_issuer, unsigned_token
from support.tls import make_certificates

from gateway.identity.oidc_keys import IssuerKeys, IssuerUnavailable
from gateway.identity.oidc_verify import TokenRejected, claims_match, verify_token

AUDIENCE = "gateway.test"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def make_keys(clock: Clock) -> AsyncIterator[Callable[..., IssuerKeys]]:
    made: list[IssuerKeys] = []

    def make(issuer: str, **options: Any) -> IssuerKeys:
        options.setdefault("clock", clock)
        options.setdefault("timeout", 2.0)
        keys = IssuerKeys(issuer, **options)
        made.append(keys)
        return keys

    yield make
    for keys in made:
        await keys.close()


async def verify(token: str, keys: IssuerKeys) -> dict[str, Any]:
    return await verify_token(token, keys, audience=AUDIENCE)


async def reason(token: str, keys: IssuerKeys) -> str:
    with pytest.raises(TokenRejected) as info:
        await verify(token, keys)
    return info.value.reason


async def test_tokens_of_both_key_types_verify(
    federation_issuer: FederationIssuer, make_keys: Callable[..., IssuerKeys]
) -> None:
    keys = make_keys(federation_issuer.url)
    for kind in ("rsa", "ec"):
        claims = await verify(federation_issuer.mint(key=kind), keys)
        assert claims["repository"] == "acme/app" and claims["iss"] == federation_issuer.url
    assert (federation_issuer.discovery_fetches, federation_issuer.jwks_fetches) == (1, 1)
    assert (await keys.metadata())["jwks_uri"] == federation_issuer.jwks_uri


async def test_forged_and_foreign_tokens_are_refused(
    federation_issuer: FederationIssuer, make_keys: Callable[..., IssuerKeys]
) -> None:
    keys = make_keys(federation_issuer.url)
    issuer, now = federation_issuer, int(time.time())
    assert await reason(issuer.mint({"aud": "other.example"}), keys) == "audience"
    assert await reason(issuer.mint({"iss": "https://token.actions.githubusercontent.com"}), keys) == "issuer"
    old = {"exp": now - 120, "iat": now - 600, "nbf": now - 600}
    assert await reason(issuer.mint(old), keys) == "expired"
    assert await reason(issuer.mint({"nbf": now + 600}), keys) == "expired"
    unsigned = unsigned_token(issuer.github_claims(), {"kid": issuer.key().kid})
    assert await reason(unsigned, keys) == "algorithm"
    assert await reason(hs256_with_public_key(issuer.github_claims(), issuer.key()), keys) == "algorithm"
    assert await reason(issuer.mint(algorithm="RS512"), keys) == "algorithm"
    outsider = make_key("rsa", kid=issuer.key().kid)  # the issuer's kid, not its key
    assert await reason(issuer.mint(key=outsider), keys) == "signature"
    # Valid, but for another repository: the federation entry's claims do not match.
    claims = await verify(issuer.mint({"repository": "mallory/app"}), keys)
    assert not claims_match({"repository_owner_id": "1234567", "repository": "acme/app"}, claims)
    assert claims_match({"repository_owner_id": "1234567", "repository": "mallory/*"}, claims)


async def test_a_token_of_another_issuer_is_refused(
    federation_issuer: FederationIssuer, make_keys: Callable[..., IssuerKeys]
) -> None:
    other = start_issuer()
    try:
        keys = make_keys(federation_issuer.url)
        assert await reason(other.mint(), keys) == "unknown_key"
        same_kid = other.mint({"iss": federation_issuer.url}, headers={"kid": federation_issuer.key().kid})
        assert await reason(same_kid, keys) == "signature"
    finally:
        other.stop()


async def test_a_flood_of_unknown_kids_fetches_at_most_once_a_minute(
    federation_issuer: FederationIssuer, make_keys: Callable[..., IssuerKeys], clock: Clock
) -> None:
    issuer = federation_issuer
    keys = make_keys(issuer.url)

    async def flood(count: int = 50) -> list[BaseException | dict[str, Any]]:
        tokens = [issuer.mint(headers={"kid": secrets.token_hex(8)}) for _ in range(count)]
        return await asyncio.gather(*(verify(t, keys) for t in tokens), return_exceptions=True)

    answers = await flood()  # concurrent, on an empty cache: one fetch between them
    assert all(isinstance(a, TokenRejected) and a.reason == "unknown_key" for a in answers)
    assert issuer.jwks_fetches == 1
    clock.advance(30)
    await flood()
    assert issuer.jwks_fetches == 1
    clock.advance(31)
    await flood()
    assert issuer.jwks_fetches == 2
    # A rotated key is found by the next refetch allowed, not before.
    new = issuer.rotate("rsa")
    assert await reason(issuer.mint(key=new), keys) == "unknown_key"
    assert issuer.jwks_fetches == 2
    clock.advance(61)
    assert (await verify(issuer.mint(key=new), keys))["sub"]
    assert issuer.jwks_fetches == 3
    await flood()
    assert issuer.jwks_fetches == 3


async def test_outage_with_keys_cached_and_without(
    federation_issuer: FederationIssuer, make_keys: Callable[..., IssuerKeys], clock: Clock
) -> None:
    issuer = federation_issuer
    cached, empty = make_keys(issuer.url), make_keys(issuer.url)
    assert await verify(issuer.mint(), cached)
    issuer.stop()
    assert await verify(issuer.mint(), cached)  # within refresh_after: no fetch at all
    clock.advance(3 * 3600)  # due for a refresh, which fails: the cached keys still serve
    assert await verify(issuer.mint(key="ec"), cached)
    with pytest.raises(IssuerUnavailable) as info:
        await verify(issuer.mint(), empty)
    assert info.value.reason == "unreachable"
    clock.advance(21 * 3600 + 1)  # 24 h after the last successful fetch: no keys to trust
    with pytest.raises(IssuerUnavailable):
        await verify(issuer.mint(), cached)
    issuer.start()
    clock.advance(10)  # past the failure back-off
    assert await verify(issuer.mint(), cached)
    assert await verify(issuer.mint(), empty)


async def test_redirects_are_not_followed(
    federation_issuer: FederationIssuer, make_keys: Callable[..., IssuerKeys]
) -> None:
    target = start_issuer()
    try:
        federation_issuer.redirect_jwks = target.jwks_uri
        with pytest.raises(IssuerUnavailable) as info:
            await verify(federation_issuer.mint(), make_keys(federation_issuer.url))
        assert info.value.reason == "redirect"
        federation_issuer.redirect_jwks = None
        federation_issuer.redirect_discovery = f"{target.url}/.well-known/openid-configuration"
        with pytest.raises(IssuerUnavailable):
            await verify(federation_issuer.mint(), make_keys(federation_issuer.url))
        assert (target.discovery_fetches, target.jwks_fetches) == (0, 0)
    finally:
        target.stop()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"issuer": "https://token.actions.githubusercontent.com"}, "discovery_issuer"),
        ({"issuer": None}, "discovery_issuer"),
        ({"jwks_uri": "http://keys.example.com/jwks"}, "jwks_uri"),
        ({"jwks_uri": None}, "jwks_uri"),
    ],
)
async def test_a_bad_discovery_document_is_refused(
    federation_issuer: FederationIssuer, make_keys: Callable[..., IssuerKeys],
    overrides: dict[str, Any], expected: str,
) -> None:
    federation_issuer.discovery_overrides = overrides
    with pytest.raises(IssuerUnavailable) as info:
        await verify(federation_issuer.mint(), make_keys(federation_issuer.url))
    assert info.value.reason == expected
    assert federation_issuer.jwks_fetches == 0


async def test_keys_without_alg_and_refused_key_types(
    federation_issuer: FederationIssuer, make_keys: Callable[..., IssuerKeys]
) -> None:
    issuer = federation_issuer
    plain_rsa = issuer.add_key(make_key("rsa", publish_alg=False))
    plain_ec = issuer.add_key(make_key("ec", publish_alg=False))
    labelled_hs = make_key("rsa", kid="rsa-as-hs256")
    labelled_hs.jwk["alg"] = "HS256"
    issuer.add_key(labelled_hs)
    ed25519 = Ed25519PrivateKey.generate()
    issuer.add_jwk({**json.loads(OKPAlgorithm.to_jwk(ed25519.public_key())), "kid": "okp-1", "use": "sig"})
    keys = make_keys(issuer.url)
    assert await verify(issuer.mint(key=plain_rsa), keys)  # RS256
    assert await verify(issuer.mint(key=plain_ec), keys)  # ES256
    assert await reason(issuer.mint(key=plain_rsa, algorithm="PS256"), keys) == "algorithm"
    assert await reason(hs256_with_public_key(issuer.github_claims(), labelled_hs), keys) == "unknown_key"
    assert await reason(issuer.mint(key=labelled_hs, algorithm="RS256"), keys) == "unknown_key"
    okp = jwt.encode(issuer.github_claims(), ed25519, algorithm="EdDSA", headers={"kid": "okp-1"})
    assert await reason(okp, keys) == "unknown_key"
    assert issuer.jwks_fetches == 1


async def test_a_slow_issuer_times_out(
    federation_issuer: FederationIssuer, make_keys: Callable[..., IssuerKeys]
) -> None:
    federation_issuer.delay = 1.5
    with pytest.raises(IssuerUnavailable) as info:
        await verify(federation_issuer.mint(), make_keys(federation_issuer.url, timeout=0.3))
    assert info.value.reason == "timeout"


async def test_https_issuer_with_a_ca_file(tmp_path: Path, make_keys: Callable[..., IssuerKeys]) -> None:
    certs = make_certificates(tmp_path / "tls")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs.server_cert, certs.server_key)
    issuer = start_issuer(tls=context)
    try:
        assert issuer.url.startswith("https://127.0.0.1:")
        assert await verify(issuer.mint(), make_keys(issuer.url, ca_file=str(certs.ca_cert)))
        with pytest.raises(IssuerUnavailable):  # the test CA is not a system CA
            await verify(issuer.mint(), make_keys(issuer.url))
    finally:
        issuer.stop()


async def test_a_session_passed_in_is_left_open(federation_issuer: FederationIssuer) -> None:
    async with aiohttp.ClientSession() as session:
        async with IssuerKeys(federation_issuer.url, session=session) as keys:
            assert await verify(federation_issuer.mint(), keys)
        assert not session.closed


async def test_an_issuer_with_a_path(make_keys: Callable[..., IssuerKeys]) -> None:
    issuer = start_issuer(path="/realms/acme")
    try:
        keys = make_keys(issuer.url + "/")  # a trailing slash is dropped before the well-known path
        with pytest.raises(IssuerUnavailable) as info:  # but the document's issuer must match exactly
            await verify(issuer.mint(), keys)
        assert info.value.reason == "discovery_issuer"
        assert await verify(issuer.mint(), make_keys(issuer.url))
    finally:
        issuer.stop()
