"""ID token verification with keys made here (a key source of the test's own), claim matching,
the key-pinning and URL rules of gateway.identity.oidc_keys."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import RSAAlgorithm
from support.issuer import IssuerKey, hs256_with_public_key, make_key, unsigned_token

from gateway.identity.oidc_keys import (
    IssuerKeys,
    VerificationKey,
    check_url,
    parse_jwks,
    pinned_alg,
)
from gateway.identity.oidc_verify import TokenRejected, claims_match, verify_token

ISSUER = "https://token.example.test"
AUDIENCE = "gateway.test"
RSA_KEY = make_key("rsa", kid="rsa-1")
EC_KEY = make_key("ec", kid="ec-1")


class LocalKeys:
    """A KeySource over JWKs given here; counts lookups."""

    def __init__(self, *keys: IssuerKey, issuer: str = ISSUER) -> None:
        self.issuer = issuer
        self.keys = parse_jwks({"keys": [k.jwk for k in keys]})
        self.lookups = 0

    async def lookup(self, kid: str | None) -> tuple[VerificationKey, ...]:
        self.lookups += 1
        if kid is None:
            return self.keys if len(self.keys) == 1 else ()
        return tuple(k for k in self.keys if k.kid == kid)


class FromNow(int):
    """A time claim given as seconds from when the token is made (parameters are made at
    collection, which may be many minutes before the test runs)."""


class FromNowText(int):
    """The same, as a string claim (malformed on purpose)."""


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": "repo:acme/app:ref:refs/heads/main",
                            "iat": now, "nbf": now, "exp": now + 300, "repository": "acme/app"}
    for name, value in changes.items():
        if isinstance(value, FromNowText):
            value = str(now + int(value))
        elif isinstance(value, FromNow):
            value = now + int(value)
        base[name] = value
    return {k: v for k, v in base.items() if v is not None}


def sign(payload: dict[str, Any], key: IssuerKey = RSA_KEY, alg: str | None = None, **header: Any) -> str:
    headers = {"kid": key.kid, **header}
    return jwt.encode(payload, key.private_key, algorithm=alg or key.alg,
                      headers={k: v for k, v in headers.items() if v is not None})


async def verify(token: str, keys: LocalKeys | None = None) -> dict[str, Any]:
    return await verify_token(token, keys or LocalKeys(RSA_KEY, EC_KEY), audience=AUDIENCE)


async def rejected(token: str, keys: LocalKeys | None = None) -> str:
    with pytest.raises(TokenRejected) as info:
        await verify(token, keys)
    assert str(info.value) == f"token rejected: {info.value.reason}"  # never the token
    return info.value.reason


@pytest.mark.parametrize("key", [RSA_KEY, EC_KEY], ids=["RS256", "ES256"])
async def test_a_valid_token_gives_its_claims(key: IssuerKey) -> None:
    got = await verify(sign(claims(), key))
    assert got["repository"] == "acme/app" and got["iss"] == ISSUER


async def test_audience_may_be_a_list_holding_ours() -> None:
    assert (await verify(sign(claims(aud=["other", AUDIENCE]))))["sub"]
    assert await rejected(sign(claims(aud=["other", "more"]))) == "audience"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"aud": "gateway.test.evil"}, "audience"),
        ({"aud": "gateway"}, "audience"),
        ({"iss": ISSUER + "/"}, "issuer"),
        ({"iss": "https://token.example"}, "issuer"),
        ({"exp": FromNow(-61)}, "expired"),
        ({"nbf": FromNow(120)}, "expired"),
        ({"iat": FromNow(120)}, "expired"),
        ({"exp": None}, "claims"),
        ({"iat": None}, "claims"),
        ({"sub": None}, "claims"),
        ({"aud": None}, "claims"),
        ({"iss": None}, "claims"),
        ({"sub": ""}, "claims"),
        ({"sub": 42}, "claims"),
        ({"exp": FromNowText(300)}, "malformed"),
        ({"iat": True}, "malformed"),
    ],
)
async def test_claims_are_checked(changes: dict[str, Any], reason: str) -> None:
    assert await rejected(sign(claims(**changes))) == reason


async def test_leeway_is_60_seconds() -> None:
    now = int(time.time())
    assert await verify(sign(claims(exp=now - 50, nbf=now + 50, iat=now + 50)))
    assert await rejected(sign(claims(exp=now - 70))) == "expired"


async def test_alg_none_is_refused_without_a_key_lookup() -> None:
    keys = LocalKeys(RSA_KEY)
    assert await rejected(unsigned_token(claims(), {"kid": RSA_KEY.kid}), keys) == "algorithm"
    for alg in ("None", "NONE"):
        token = unsigned_token(claims(), {"kid": RSA_KEY.kid, "alg": alg})
        assert await rejected(token, keys) == "algorithm"
    assert keys.lookups == 0


async def test_hs256_keyed_with_the_public_key_is_refused() -> None:
    for key in (RSA_KEY, EC_KEY):
        assert await rejected(hs256_with_public_key(claims(), key)) == "algorithm"


@pytest.mark.parametrize("alg", ["RS384", "RS512", "PS256"])
async def test_another_rsa_algorithm_than_the_pinned_one_is_refused(alg: str) -> None:
    assert await rejected(sign(claims(), RSA_KEY, alg=alg)) == "algorithm"


async def test_a_key_pinned_by_its_jwk_alg() -> None:
    ps = make_key("rsa", kid="ps-1")
    ps.jwk["alg"] = "PS256"
    keys = LocalKeys(ps)
    assert await verify(sign(claims(), ps, alg="PS256"), keys)
    assert await rejected(sign(claims(), ps, alg="RS256"), keys) == "algorithm"


async def test_signature_must_be_by_the_named_key() -> None:
    impostor = make_key("rsa", kid=RSA_KEY.kid)  # same kid, another private key
    assert await rejected(sign(claims(), impostor)) == "signature"
    head, _payload, sig = sign(claims()).split(".")
    forged = jwt.utils.base64url_encode(json.dumps(claims(repository="acme/other")).encode()).decode()
    assert await rejected(f"{head}.{forged}.{sig}") == "signature"


async def test_kids() -> None:
    assert await rejected(sign(claims(), kid="nope")) == "unknown_key"
    assert await rejected(sign(claims(), kid=None)) == "unknown_key"  # two keys: which?
    assert await verify(sign(claims(), kid=None), LocalKeys(RSA_KEY))  # one key: that one
    _head, payload, sig = sign(claims()).split(".")
    head = jwt.utils.base64url_encode(json.dumps({"alg": "RS256", "kid": 7}).encode()).decode()
    assert await rejected(f"{head}.{payload}.{sig}") == "malformed"


def _b64(data: bytes) -> str:
    return jwt.utils.base64url_encode(data).decode()


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", "malformed"), ("abc", "malformed"), ("a.b", "malformed"), ("..", "malformed"),
        ("a.b.c", "malformed"), ("a.b.c.d.e", "malformed"), ("x" * 20000, "malformed"),
        (f"{_b64(b'[1]')}.{_b64(b'{}')}.", "malformed"),  # header not an object
        (f"{_b64(b'{}')}.{_b64(b'{}')}.", "malformed"),  # no alg
        (sign(claims(), crit=["exp"]), "malformed"),
        (f"{_b64(json.dumps({'alg': 'RS256', 'kid': 'rsa-1'}).encode())}.bm90IGpzb24.c2ln", "signature"),
    ],
)
async def test_malformed_tokens(token: str, reason: str) -> None:
    assert await rejected(token) == reason


@pytest.mark.parametrize(
    ("expected", "claim_values", "result"),
    [
        ({"repository": "acme/app"}, {"repository": "acme/app"}, True),
        ({"repository": "acme/app"}, {"repository": "acme/app2"}, False),
        ({"repository": "acme/app"}, {"repository": "Acme/App"}, False),
        ({"repository": "acme/*"}, {"repository": "acme/app"}, True),
        ({"repository": "acme/*"}, {"repository": "acme/app/sub"}, False),
        ({"repository": "acme/*"}, {"repository": "acme/"}, True),
        ({"repository": "acme/*"}, {"repository": "evil/acme/app"}, False),
        ({"ref": "refs/heads/*"}, {"ref": "refs/heads/main"}, True),
        ({"ref": "refs/heads/*"}, {"ref": "refs/heads/feature/x"}, False),
        ({"ref": "refs/*/main"}, {"ref": "refs/tags/main"}, True),
        ({"ref": "refs/heads/rel-*-final"}, {"ref": "refs/heads/rel-1.2-final"}, True),
        ({"ref": "refs/heads/v1.?"}, {"ref": "refs/heads/v1.5"}, False),  # ? is literal
        ({"ref": "refs/heads/v1.?"}, {"ref": "refs/heads/v1.?"}, True),
        ({"ref": "refs/heads/[ab]"}, {"ref": "refs/heads/a"}, False),  # [...] is literal
        ({"ref": "a.c"}, {"ref": "abc"}, False),  # . is literal
        ({"sub": "*"}, {"sub": "anything"}, True),
        ({"sub": "*"}, {"sub": "a/b"}, False),
        ({"sub": "*"}, {"sub": "line\nbreak"}, True),
        ({"repository_owner_id": "1234567"}, {"repository_owner_id": 1234567}, False),
        ({"repository_owner_id": "1234567"}, {}, False),
        ({"repository_owner_id": "*"}, {}, False),
        ({"repository_owner_id": "*"}, {"repository_owner_id": None}, False),
        ({"x": "True"}, {"x": True}, False),
        ({"x": "['a']"}, {"x": ["a"]}, False),
        ({"a": "1", "b": "2"}, {"a": "1", "b": "2"}, True),
        ({"a": "1", "b": "2"}, {"a": "1", "b": "3"}, False),
        ({"a": "1", "b": "2"}, {"a": "1"}, False),
        ({}, {"a": "1"}, False),
    ],
)
def test_claims_match(expected: dict[str, str], claim_values: dict[str, Any], result: bool) -> None:
    assert claims_match(expected, claim_values) is result


def _raw_jwk(private: Any, **extra: Any) -> dict[str, Any]:
    if isinstance(private, rsa.RSAPrivateKey):
        jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    else:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    jwk.update(extra)
    return {k: v for k, v in jwk.items() if v is not None}


RSA_PRIV = RSA_KEY.private_key


@pytest.mark.parametrize(
    ("jwk", "alg"),
    [
        (_raw_jwk(RSA_PRIV), "RS256"),
        (_raw_jwk(RSA_PRIV, alg="RS256"), "RS256"),
        (_raw_jwk(RSA_PRIV, alg="PS384"), "PS384"),
        (_raw_jwk(RSA_PRIV, alg="HS256"), None),
        (_raw_jwk(RSA_PRIV, alg="ES256"), None),
        (_raw_jwk(RSA_PRIV, alg="none"), None),
        (_raw_jwk(EC_KEY.private_key), "ES256"),
        (_raw_jwk(EC_KEY.private_key, alg="ES384"), None),
        (_raw_jwk(ec.generate_private_key(ec.SECP384R1())), "ES384"),
        ({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}, None),
        ({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "x": "AA"}, None),
        ({"kty": "oct", "k": "c2VjcmV0"}, None),
        ({"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"}, None),
    ],
)
def test_algorithm_pinned_to_the_key(jwk: dict[str, Any], alg: str | None) -> None:
    assert pinned_alg(jwk) == alg
    keys = parse_jwks({"keys": [jwk]})
    assert [k.alg for k in keys] == ([alg] if alg else [])


def test_unusable_keys_are_skipped() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - refused
    document = {"keys": [
        _raw_jwk(RSA_PRIV, kid="enc", use="enc"),
        _raw_jwk(RSA_PRIV, kid="ops", key_ops=["encrypt"]),
        _raw_jwk(small, kid="small"),
        _raw_jwk(RSA_PRIV, kid=5),
        {"kty": "RSA", "kid": "broken", "n": "AQAB"},
        "not a key",
        _raw_jwk(RSA_PRIV, kid="good", key_ops=["verify"]),
    ]}
    assert [k.kid for k in parse_jwks(document)] == ["good"]
    for bad in (None, [], {"keys": {}}, {"nokeys": []}):
        with pytest.raises(ValueError):
            parse_jwks(bad)


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://token.actions.githubusercontent.com", True),
        ("https://idp.example.com/realms/acme", True),
        ("http://127.0.0.1:8080", True),
        ("http://127.8.9.10/x", True),
        ("http://[::1]:5556/dex", True),
        ("http://localhost:8080", True),
        ("http://idp.example.com", False),
        ("http://10.0.0.1", False),
        ("http://[::2]", False),
        ("http://127.0.0.1.nip.io", False),
        ("ftp://idp.example.com", False),
        ("https://user:pw@idp.example.com", False),
        ("https://idp.example.com/#frag", False),
        ("https://", False),
        ("https://idp.example.com:99999", False),
        ("", False),
        ("/relative", False),
    ],
)
def test_url_rule(url: str, ok: bool) -> None:
    if ok:
        assert check_url(url) == url
    else:
        with pytest.raises(ValueError) as info:
            check_url(url)
        assert "pw" not in str(info.value)


def test_an_http_issuer_off_loopback_is_refused() -> None:
    with pytest.raises(ValueError):
        IssuerKeys("http://idp.example.com")
