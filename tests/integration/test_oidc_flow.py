"""The authorization code flow with PKCE against a real OpenID provider (npm oidc-provider),
its login and consent forms driven over HTTP (no browser), the ID token verified."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest
from support.oidc_provider import LoginRefused, OidcProvider, authorize, start_oidc_provider

from gateway.identity.oidc_flow import LoginFailed, PendingLogin, SsoClient, SsoLogin, code_challenge
from gateway.identity.oidc_keys import IssuerKeys

CALLBACK = "http://127.0.0.1:45321/ui/sso/callback"  # any port: a loopback redirect URI
SCOPES = ("openid", "profile", "email", "groups")


@pytest.fixture
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


@pytest.fixture
async def client(oidc_provider: OidcProvider) -> AsyncIterator[SsoClient]:
    async with IssuerKeys(oidc_provider.issuer) as keys:
        yield SsoClient(keys, client_id=oidc_provider.client_id,
                        client_secret=oidc_provider.client_secret, scopes=SCOPES)


@pytest.fixture(scope="module")
def post_auth_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    """A provider whose only client authentication is client_secret_post."""
    provider = start_oidc_provider(tmp_path_factory.mktemp("oidc-post"), client_auth="client_secret_post")
    yield provider
    provider.stop()


async def sign_in(
    client: SsoClient, provider: OidcProvider, browser: aiohttp.ClientSession, username: str
) -> tuple[PendingLogin, dict[str, str]]:
    """Run the browser's part: the pending login and the callback's query parameters."""
    url, pending = await client.begin(CALLBACK)
    callback = await authorize(browser, url, login=provider.login_for(username),
                               password=provider.password_for(username), stop_at=CALLBACK)
    return pending, dict(parse_qsl(urlsplit(callback).query))


async def login(
    client: SsoClient, provider: OidcProvider, browser: aiohttp.ClientSession, username: str
) -> SsoLogin:
    pending, query = await sign_in(client, provider, browser, username)
    return await client.finish(pending, query)


async def test_sign_in_gives_subject_username_and_groups(
    client: SsoClient, oidc_provider: OidcProvider, browser: aiohttp.ClientSession
) -> None:
    result = await login(client, oidc_provider, browser, "erin")
    assert (result.iss, result.sub) == (oidc_provider.issuer, "u-1001")
    assert result.claims["preferred_username"] == "erin"
    assert result.claims["groups"] == ["platform", "registry-admins"]
    assert result.claims["aud"] == oidc_provider.client_id
    assert "registry-admins" not in repr(result)  # claims stay out of logs


async def test_the_authorization_request(client: SsoClient, oidc_provider: OidcProvider) -> None:
    url, pending = await client.begin(CALLBACK)
    assert url.startswith(f"{oidc_provider.issuer}/auth?")
    query = dict(parse_qsl(urlsplit(url).query))
    assert query == {
        "response_type": "code", "client_id": "registry-gateway", "redirect_uri": CALLBACK,
        "scope": "openid profile email groups", "state": pending.state, "nonce": pending.nonce,
        "code_challenge": code_challenge(pending.code_verifier), "code_challenge_method": "S256",
    }
    _, other = await client.begin(CALLBACK)
    assert len({pending.state, pending.nonce, pending.code_verifier, other.state, other.nonce}) == 5
    assert len(pending.code_verifier) >= 43 and pending.state not in repr(pending)
    assert PendingLogin.from_dict(pending.as_dict()) == pending
    assert oidc_provider.client_secret not in repr(client)


async def test_without_a_groups_claim(
    client: SsoClient, oidc_provider: OidcProvider, browser: aiohttp.ClientSession
) -> None:
    result = await login(client, oidc_provider, browser, "grace")
    assert result.sub == "u-1003" and "groups" not in result.claims


async def test_client_secret_post(post_auth_provider: OidcProvider, browser: aiohttp.ClientSession) -> None:
    async with IssuerKeys(post_auth_provider.issuer) as keys:
        client = SsoClient(keys, client_id=post_auth_provider.client_id,
                           client_secret=post_auth_provider.client_secret, scopes=SCOPES)
        assert (await keys.metadata())["token_endpoint_auth_methods_supported"] == ["client_secret_post"]
        result = await login(client, post_auth_provider, browser, "frank")
        assert result.claims["groups"] == ["dev"]


async def test_a_wrong_password_at_the_provider(
    client: SsoClient, oidc_provider: OidcProvider, browser: aiohttp.ClientSession
) -> None:
    url, _pending = await client.begin(CALLBACK)
    with pytest.raises(LoginRefused):
        await authorize(browser, url, login="u-1001", password="wrong", stop_at=CALLBACK)
    with pytest.raises(LoginRefused):
        await authorize(browser, url, login="u-9999", password="x", stop_at=CALLBACK)


async def test_state_nonce_verifier_and_issuer_are_checked(
    client: SsoClient, oidc_provider: OidcProvider, browser: aiohttp.ClientSession
) -> None:
    cases = {
        "state": lambda p, q: (p, {**q, "state": "forged"}),
        "issuer": lambda p, q: (p, {**q, "iss": "http://127.0.0.1:1"}),
        "nonce": lambda p, q: (dataclasses.replace(p, nonce="other"), q),
        "token_endpoint": lambda p, q: (dataclasses.replace(p, code_verifier="x" * 64), q),
        "code": lambda p, q: (p, {k: v for k, v in q.items() if k != "code"}),
    }
    for expected, tamper in cases.items():
        pending, query = await sign_in(client, oidc_provider, browser, "erin")
        bad_pending, bad_query = tamper(pending, query)
        with pytest.raises(LoginFailed) as info:
            await client.finish(bad_pending, bad_query)
        assert info.value.reason == expected, expected
    without_iss = {k: v for k, v in query.items() if k != "iss"}  # the provider announces iss
    with pytest.raises(LoginFailed, match="issuer"):
        await client.finish(pending, without_iss)


async def test_a_code_works_once(
    client: SsoClient, oidc_provider: OidcProvider, browser: aiohttp.ClientSession
) -> None:
    pending, query = await sign_in(client, oidc_provider, browser, "frank")
    assert (await client.finish(pending, query)).sub == "u-1002"
    with pytest.raises(LoginFailed) as info:
        await client.finish(pending, query)
    assert info.value.reason == "token_endpoint"


async def test_a_wrong_client_secret(oidc_provider: OidcProvider, browser: aiohttp.ClientSession) -> None:
    async with IssuerKeys(oidc_provider.issuer) as keys:
        client = SsoClient(keys, client_id=oidc_provider.client_id, client_secret="wrong", scopes=SCOPES)
        pending, query = await sign_in(client, oidc_provider, browser, "erin")
        with pytest.raises(LoginFailed) as info:
            await client.finish(pending, query)
        assert info.value.reason == "token_endpoint"


async def test_cancel_at_the_provider(
    client: SsoClient, oidc_provider: OidcProvider, browser: aiohttp.ClientSession
) -> None:
    url, pending = await client.begin(CALLBACK)
    callback = await authorize(browser, url, login="u-1002", password=oidc_provider.password_for("frank"),
                               stop_at=CALLBACK, consent=False)
    query = dict(parse_qsl(urlsplit(callback).query))
    assert query["error"] == "access_denied"
    with pytest.raises(LoginFailed) as info:
        await client.finish(pending, query)
    assert info.value.reason == "denied"


async def test_a_pending_login_expires(oidc_provider: OidcProvider, browser: aiohttp.ClientSession) -> None:
    now = [1_000_000.0]
    async with IssuerKeys(oidc_provider.issuer) as keys:
        client = SsoClient(keys, client_id=oidc_provider.client_id,
                           client_secret=oidc_provider.client_secret, clock=lambda: now[0])
        pending, query = await sign_in(client, oidc_provider, browser, "erin")
        now[0] += 601
        with pytest.raises(LoginFailed) as info:
            await client.finish(pending, query)
        assert info.value.reason == "expired"


def test_a_damaged_pending_login_is_refused() -> None:
    good = PendingLogin("s", "n", "v", CALLBACK, 1.0).as_dict()
    for damaged in ({}, {**good, "state": ""}, {**good, "nonce": 5}, {**good, "created_at": "x"}):
        with pytest.raises(LoginFailed):
            PendingLogin.from_dict(damaged)
