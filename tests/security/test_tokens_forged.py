"""Forged and misused tokens against the running gateway.

The test holds the gateway's private key (token.key_file), so it can also sign tokens that are
cryptographically ours but wrong in some other way: expired, for another audience or issuer,
with a header we never write, an `access` claim of the wrong shape, or of the refresh type.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from support.credentials import basic, bearer
from support.gateway import RunningGateway, password_hash
from support.security import ALL_PASSWORDS, SERVICE, fetch_token, raw_request

from gateway.keys import SigningKey, libtrust_kid
from gateway.policy.scope import RepositoryScope
from gateway.policy.subject import Subject
from gateway.tokens import TokenAuthority

ISSUER = "registry-gateway-test"
TARGET = "/v2/myteam/app/tags/list"  # alice may pull; missing upstream, so an allowed GET is 404
ALICE = basic("alice", ALL_PASSWORDS["alice"])
GRANT = [{"type": "repository", "name": "myteam/app", "actions": ["pull"]}]
ATTACKER = ec.generate_private_key(ec.SECP256R1())


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {"iss": ISSUER, "sub": "alice", "aud": SERVICE, "exp": now + 300,
                            "nbf": now - 1, "iat": now, "jti": secrets.token_urlsafe(12),
                            "access": GRANT}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not DROP}


DROP = object()


def sign(key: ec.EllipticCurvePrivateKey, payload: dict[str, Any], **header: Any) -> str:
    headers = {"typ": "JWT", "kid": libtrust_kid(key.public_key()), **header}
    return jwt.encode(payload, key, algorithm="ES256", headers=headers)


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    return ".".join([b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()),
                     b64(signature)])


def hs256(secret: bytes, header: dict[str, Any], payload: dict[str, Any]) -> str:
    signing_input = ".".join([b64(json.dumps(header).encode()), b64(json.dumps(payload).encode())])
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def public_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


async def use(gateway: RunningGateway, token: str, target: str = TARGET) -> tuple[int, str]:
    answer = await raw_request(gateway.port, "GET", target, bearer(token))
    return answer.status, answer.header("WWW-Authenticate") or ""


async def test_a_token_we_sign_correctly_is_accepted(
        shared_gateway: RunningGateway, token_key: tuple[Path, ec.EllipticCurvePrivateKey]) -> None:
    """The forgeries below fail for the reason they name, not because signing is broken."""
    status, _ = await use(shared_gateway, sign(token_key[1], claims()))
    assert status == 404  # allowed: the registry says the repository does not exist


def forgeries(key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    kid = libtrust_kid(key.public_key())
    ours = {"typ": "JWT", "kid": kid}
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    attacker_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ATTACKER.public_key()))
    now = int(time.time())
    return {
        "alg none": unsigned({"alg": "none", **ours}, claims()),
        "alg None": unsigned({"alg": "None", **ours}, claims()),
        "alg none with a signature": unsigned({"alg": "none", **ours}, claims(), b"sig"),
        "HS256 keyed with our public key (PEM)": hs256(public_pem(key), {"alg": "HS256", **ours},
                                                       claims()),
        "HS256 keyed with our public key (DER)": hs256(der, {"alg": "HS256", **ours}, claims()),
        "attacker's ES256 key under our kid": sign(ATTACKER, claims(), kid=kid),
        "attacker's key, kid of its own": sign(ATTACKER, claims()),
        "attacker's key in jwk": sign(ATTACKER, claims(), jwk=attacker_jwk),
        "attacker's key in jwk, our kid": sign(ATTACKER, claims(), jwk=attacker_jwk, kid=kid),
        "attacker's key by jku": sign(ATTACKER, claims(), jku="http://127.0.0.1:1/jwks", kid=kid),
        "attacker's key by x5u": sign(ATTACKER, claims(), x5u="http://127.0.0.1:1/c.pem", kid=kid),
        "attacker's key in x5c": sign(ATTACKER, claims(), x5c=["MIIB"], kid=kid),
        "RS256 by another key": jwt.encode(claims(), rsa_key, algorithm="RS256", headers=ours),
        "ES384 header": unsigned({"alg": "ES384", **ours}, claims(), b"x" * 96),
        "our key, but a jwk header we never write": sign(key, claims(),
                                                          jwk=attacker_jwk),
        "our key, but a crit header": sign(key, claims(), crit=["exp"]),
        "expired": sign(key, claims(exp=now - 120, iat=now - 600, nbf=now - 600)),
        "not yet valid (nbf)": sign(key, claims(nbf=now + 300)),
        "issued in the future (iat)": sign(key, claims(iat=now + 300)),
        "wrong audience": sign(key, claims(aud="other.service")),
        "audience as a list": sign(key, claims(aud=[SERVICE])),
        "wrong issuer": sign(key, claims(iss="someone-else")),
        "no exp": sign(key, claims(exp=DROP)),
        "no nbf": sign(key, claims(nbf=DROP)),
        "no iat": sign(key, claims(iat=DROP)),
        "no aud": sign(key, claims(aud=DROP)),
        "no iss": sign(key, claims(iss=DROP)),
        "no sub": sign(key, claims(sub=DROP)),
        "no jti": sign(key, claims(jti=DROP)),
        "empty jti": sign(key, claims(jti="")),
        "sub not a string": sign(key, claims(sub=1)),
        "no access": sign(key, claims(access=DROP)),
        "access not a list": sign(key, claims(access={"myteam/app": ["pull"]})),
        "access entry not an object": sign(key, claims(access=["myteam/app:pull"])),
        "access name outside the grammar": sign(key, claims(access=[
            {"type": "repository", "name": "myteam/../myteam/app", "actions": ["pull"]}])),
        "access name uppercase": sign(key, claims(access=[
            {"type": "repository", "name": "MyTeam/app", "actions": ["pull"]}])),
        "access actions not a list": sign(key, claims(access=[
            {"type": "repository", "name": "myteam/app", "actions": "pull"}])),
        "access of an unknown type": sign(key, claims(access=[
            {"type": "repository(plugin)", "name": "myteam/app", "actions": ["pull"]}])),
        "refresh type": sign(key, claims(), typ="refresh+jwt"),
        "no typ": jwt.encode(claims(), key, algorithm="ES256", headers={"kid": kid, "typ": None}),
        "disabled account": sign(key, claims(sub="dave")),
        "expired service account": sign(key, claims(sub="old-bot")),
        "unknown account": sign(key, claims(sub="mallory")),
        "truncated": sign(key, claims())[:-10],
        "two dots only": "..",
    }


FORGERY_NAMES = list(forgeries(ATTACKER))


@pytest.mark.parametrize("forgery", FORGERY_NAMES)
async def test_forged_tokens_are_refused(
        shared_gateway: RunningGateway, token_key: tuple[Path, ec.EllipticCurvePrivateKey],
        forgery: str) -> None:
    token = forgeries(token_key[1])[forgery]
    status, challenge = await use(shared_gateway, token)
    assert status == 401, forgery
    assert challenge.endswith('scope="repository:myteam/app:pull",error="invalid_token"')


async def test_payload_swapped_under_a_valid_signature(shared_gateway: RunningGateway) -> None:
    """alice's real token, its payload replaced with one granting sam's private repository."""
    real = (await fetch_token(shared_gateway.port, ALICE, "repository:myteam/app:pull"))["token"]
    header, payload, signature = real.split(".")
    swapped = json.loads(base64.urlsafe_b64decode(payload + "=="))
    swapped["access"] = [{"type": "repository", "name": "secret/present", "actions": ["pull"]}]
    swapped["sub"] = "sam"
    forged = ".".join([header, b64(json.dumps(swapped).encode()), signature])
    assert (await use(shared_gateway, real))[0] == 404
    status, challenge = await use(shared_gateway, forged, "/v2/secret/present/tags/list")
    assert status == 401 and 'error="invalid_token"' in challenge


async def test_a_token_for_another_repository_grants_nothing_there(
        shared_gateway: RunningGateway) -> None:
    token = (await fetch_token(shared_gateway.port, ALICE, "repository:myteam/app:pull"))["token"]
    for other in ("myteam/other", "myteam/app-evil", "myteam/app/x", "secret/present"):
        status, challenge = await use(shared_gateway, token, f"/v2/{other}/tags/list")
        assert status == 401
        assert challenge.endswith(f'scope="repository:{other}:pull",error="insufficient_scope"')
    # Nor a stronger action on the same repository.
    answer = await raw_request(shared_gateway.port, "POST", "/v2/myteam/app/blobs/uploads/",
                               bearer(token))
    assert answer.status == 401


async def test_a_valid_token_cannot_exceed_the_current_config(
        shared_gateway: RunningGateway, token_key: tuple[Path, ec.EllipticCurvePrivateKey]) -> None:
    """Signed by us and well formed, but naming access the config never granted: refused."""
    for sub, name in (("", "myteam/app"), ("bob", "myteam/app"), ("alice", "secret/present")):
        grant = [{"type": "repository", "name": name, "actions": ["pull", "push", "delete"]}]
        token = sign(token_key[1], claims(sub=sub, access=grant))
        status, challenge = await use(shared_gateway, token, f"/v2/{name}/tags/list")
        assert status == 401 and 'error="insufficient_scope"' in challenge


async def test_tokens_of_another_service_are_refused(
        shared_gateway: RunningGateway, token_key: tuple[Path, ec.EllipticCurvePrivateKey]) -> None:
    """Another gateway sharing our key, but serving another service, cannot replay its tokens."""
    other = TokenAuthority(SigningKey.from_private_key(token_key[1]), "other.service", ISSUER,
                           300, 3600)
    issued = other.issue_access(Subject("alice"), [RepositoryScope("myteam/app", frozenset({"pull"}))],
                                catalog=False)
    assert (await use(shared_gateway, issued.token))[0] == 401
    refresh = other.issue_refresh("alice", password_hash(ALL_PASSWORDS["alice"]).encode())
    answer = await refresh_grant(shared_gateway, refresh)
    assert answer[0] == 401
    # And a token endpoint asked for another service refuses outright.
    answer = await raw_request(shared_gateway.port, "GET", "/token?service=other.service", ALICE)
    assert answer.status == 400


async def refresh_grant(gateway: RunningGateway, refresh: str,
                        service: str = SERVICE) -> tuple[int, dict[str, Any]]:
    form = f"grant_type=refresh_token&refresh_token={refresh}&service={service}&client_id=test"
    answer = await raw_request(gateway.port, "POST", "/token",
                               {"Content-Type": "application/x-www-form-urlencoded"}, form.encode())
    body: dict[str, Any] = answer.json()
    return answer.status, body


async def offline_login(gateway: RunningGateway, user: str = "alice") -> str:
    answer = await raw_request(
        gateway.port, "GET", f"/token?service={SERVICE}&offline_token=true&client_id=test",
        basic(user, ALL_PASSWORDS[user]))
    assert answer.status == 200
    refresh: str = answer.json()["refresh_token"]
    return refresh


async def test_refresh_tokens_only_at_the_token_endpoint(shared_gateway: RunningGateway) -> None:
    refresh = await offline_login(shared_gateway)
    status, challenge = await use(shared_gateway, refresh)
    assert status == 401 and 'error="invalid_token"' in challenge
    assert (await refresh_grant(shared_gateway, refresh))[0] == 200
    # ... for our service only, and an access token is no refresh token.
    answer = await refresh_grant(shared_gateway, refresh, service="other.service")
    assert answer[0] == 400
    access = (await fetch_token(shared_gateway.port, ALICE, "repository:myteam/app:pull"))["token"]
    assert (await refresh_grant(shared_gateway, access))[0] == 401


async def test_refresh_tokens_are_bound_to_the_password(
        shared_gateway: RunningGateway, token_key: tuple[Path, ec.EllipticCurvePrivateKey]) -> None:
    ours = TokenAuthority(SigningKey.from_private_key(token_key[1]), SERVICE, ISSUER, 300, 3600)
    stale = ours.issue_refresh("alice", password_hash("an old password").encode())
    assert (await refresh_grant(shared_gateway, stale))[0] == 401
    for subject in ("mallory", "dave", "old-bot"):
        forged = ours.issue_refresh(subject, b"$2b$04$" + b"x" * 53)
        assert (await refresh_grant(shared_gateway, forged))[0] == 401


@pytest.mark.parametrize("change", ["password", "disabled", "removed"])
async def test_refresh_and_access_tokens_are_revocable(own_gateway: RunningGateway,
                                                       change: str) -> None:
    refresh = await offline_login(own_gateway, "frank")
    assert (await refresh_grant(own_gateway, refresh))[0] == 200
    frank = basic("frank", ALL_PASSWORDS["frank"])
    access = (await fetch_token(own_gateway.port, frank, "repository:myteam/app:pull"))["token"]
    assert (await use(own_gateway, access))[0] == 404
    config = own_gateway.copy_config()
    if change == "password":
        config["users"]["frank"]["password_hash"] = password_hash("a new password")
    elif change == "disabled":
        config["users"]["frank"]["disabled"] = True
    else:
        del config["users"]["frank"]
        config["teams"]["myteam"]["members"].remove("frank")
    own_gateway.reload(config)
    deadline = time.monotonic() + 10
    while (await refresh_grant(own_gateway, refresh))[0] == 200:
        assert time.monotonic() < deadline, "the reload did not take effect"
        await asyncio.sleep(0.1)
    assert (await refresh_grant(own_gateway, refresh))[0] == 401
    if change != "password":  # a new password does not end the short-lived access tokens
        assert (await use(own_gateway, access))[0] == 401


async def test_an_oversized_token_is_a_4xx(shared_gateway: RunningGateway) -> None:
    answer = await raw_request(shared_gateway.port, "GET", TARGET, bearer("e" * 20_000))
    assert 400 <= answer.status < 500
