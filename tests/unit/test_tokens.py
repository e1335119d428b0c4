"""Issuing and verifying tokens: ES256 only, our keys only, every claim checked."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.keys import SigningKey, libtrust_kid
from gateway.policy.scope import RepositoryScope
from gateway.policy.subject import Subject
from gateway.tokens import TokenAuthority, TokenError

KEY = SigningKey.generate()
ALICE = Subject("alice")


def authority(key: SigningKey = KEY, service: str = "gw.test", issuer: str = "iss") -> TokenAuthority:
    return TokenAuthority(key, service, issuer, ttl=300, refresh_ttl=3600)


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def forge(claims: dict[str, Any], key: Any = None, alg: str = "ES256", **header: Any) -> str:
    headers = {"typ": "JWT", "kid": KEY.kid, **header}
    return jwt.encode(claims, key or KEY.private_key, algorithm=alg, headers=headers)


def valid_claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": "iss",
        "sub": "alice",
        "aud": "gw.test",
        "exp": now + 300,
        "nbf": now,
        "iat": now,
        "jti": "j1",
        "access": [{"type": "repository", "name": "team/app", "actions": ["pull"]}],
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def test_issue_has_the_distribution_shape() -> None:
    issued = authority().issue_access(
        ALICE, [RepositoryScope("team/app", frozenset({"push", "pull"}))], catalog=True
    )
    header = jwt.get_unverified_header(issued.token)
    assert header == {"typ": "JWT", "alg": "ES256", "kid": KEY.kid}
    claims = claims_of(issued.token)
    assert claims["aud"] == "gw.test" and isinstance(claims["aud"], str)
    assert claims["access"] == [
        {"type": "repository", "name": "team/app", "actions": ["pull", "push"]},
        {"type": "registry", "name": "catalog", "actions": ["*"]},
    ]
    assert claims["exp"] - claims["iat"] == issued.expires_in == 300
    assert isinstance(issued.expires_in, int)
    assert issued.issued_at.endswith("Z") and "T" in issued.issued_at


def test_kid_is_the_libtrust_fingerprint() -> None:
    kid = libtrust_kid(KEY.private_key.public_key())
    assert kid == KEY.kid
    groups = kid.split(":")
    assert len(groups) == 12 and all(len(g) == 4 for g in groups)


def test_round_trip() -> None:
    auth = authority()
    token = auth.issue_access(ALICE, [RepositoryScope("a/b", frozenset({"pull"}))], False).token
    verified = auth.verify_access(token)
    assert verified.subject == "alice"
    assert verified.access == {"a/b": frozenset({"pull"})}


def test_anonymous_token_has_empty_subject_and_access() -> None:
    auth = authority()
    verified = auth.verify_access(auth.issue_access(None, [], False).token)
    assert verified.subject == "" and verified.access == {}


def _hs256_with_public_key() -> str:
    public_pem = KEY.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = base64.urlsafe_b64encode(
        json.dumps({"alg": "HS256", "typ": "JWT", "kid": KEY.kid}).encode()
    ).rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(valid_claims()).encode()).rstrip(b"=")
    signature = base64.urlsafe_b64encode(
        hmac.new(public_pem, header + b"." + body, hashlib.sha256).digest()
    ).rstrip(b"=")
    return (header + b"." + body + b"." + signature).decode()


def _alg_none() -> str:
    header = base64.urlsafe_b64encode(
        json.dumps({"alg": "none", "typ": "JWT", "kid": KEY.kid}).encode()
    ).rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(valid_claims()).encode()).rstrip(b"=")
    return (header + b"." + body + b".").decode()


def _payload_swapped() -> str:
    good = forge(valid_claims())
    header, _, signature = good.split(".")
    evil = (
        base64.urlsafe_b64encode(
            json.dumps(
                valid_claims(access=[{"type": "repository", "name": "secret/x", "actions": ["pull"]}])
            ).encode()
        )
        .rstrip(b"=")
        .decode()
    )
    return f"{header}.{evil}.{signature}"


OTHER_KEY = ec.generate_private_key(ec.SECP256R1())
FORGED = {
    "alg none": _alg_none(),
    "hs256 with the public key": _hs256_with_public_key(),
    "payload swapped": _payload_swapped(),
    "another key, our kid": forge(valid_claims(), key=OTHER_KEY),
    "another key, its own kid": forge(
        valid_claims(), key=OTHER_KEY, kid=libtrust_kid(OTHER_KEY.public_key())
    ),
    "embedded jwk": forge(valid_claims(), key=OTHER_KEY, kid="nope", jwk={"kty": "EC", "crv": "P-256"}),
    "expired": forge(valid_claims(exp=int(time.time()) - 120)),
    "not yet valid": forge(valid_claims(nbf=int(time.time()) + 600)),
    "wrong audience": forge(valid_claims(aud="other.service")),
    "audience list": forge(valid_claims(aud=["gw.test"])),
    "wrong issuer": forge(valid_claims(iss="someone-else")),
    "no jti": forge(valid_claims(jti=None)),
    "no sub": forge(valid_claims(sub=None)),
    "no iat": forge(valid_claims(iat=None)),
    "access not a list": forge(valid_claims(access={"team/app": "pull"})),
    "access entry bad name": forge(
        valid_claims(access=[{"type": "repository", "name": "Team/../x", "actions": ["pull"]}])
    ),
    "access actions not a list": forge(
        valid_claims(access=[{"type": "repository", "name": "a/b", "actions": "pull"}])
    ),
    "no access": forge(valid_claims(access=None)),
    "refresh token used as access": authority().issue_refresh("alice", b"h"),
    "garbage": "not.a.token",
    "empty": "",
}


@pytest.mark.parametrize("name", sorted(FORGED))
def test_forged_tokens_are_refused(name: str) -> None:
    with pytest.raises(TokenError) as info:
        authority().verify_access(FORGED[name])
    assert FORGED[name] not in str(info.value) or not FORGED[name]


def test_token_for_another_service_is_refused() -> None:
    token = authority(service="other").issue_access(ALICE, [], False).token
    with pytest.raises(TokenError):
        authority().verify_access(token)


def test_leeway_is_sixty_seconds() -> None:
    authority().verify_access(forge(valid_claims(exp=int(time.time()) - 30)))
    with pytest.raises(TokenError):
        authority().verify_access(forge(valid_claims(exp=int(time.time()) - 90)))


def test_refresh_token_is_bound_to_subject_service_and_password() -> None:
    auth = authority()
    refresh = auth.issue_refresh("alice", b"hash-1")
    claims = auth.verify_refresh(refresh)
    assert claims.subject == "alice"
    assert claims.credential_tag == auth.credential_tag("alice", b"hash-1")
    assert claims.credential_tag != auth.credential_tag("alice", b"hash-2")
    assert claims.credential_tag != auth.credential_tag("bob", b"hash-1")
    with pytest.raises(TokenError):
        authority(service="other").verify_refresh(refresh)
    with pytest.raises(TokenError):
        auth.verify_refresh(auth.issue_access(ALICE, [], False).token)


def test_key_file_round_trip(tmp_path: Any) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(
        KEY.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    loaded = SigningKey.load(path)
    assert loaded.kid == KEY.kid
    token = authority(loaded).issue_access(ALICE, [], False).token
    assert authority().verify_access(token).subject == "alice"


def test_signing_key_repr_hides_the_key() -> None:
    assert repr(KEY) == f"SigningKey(kid={KEY.kid!r})"
