"""Single sign-on at a real OpenID provider (npm oidc-provider), its pages driven over HTTP, and
the CLI passwords it gives: accepted at /token and Basic on /v2/, never at /ui/login, refused
for a disabled name, before `sso.not_before`, after a token key change or without `sso`."""

from __future__ import annotations

import html
import re
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from support import Upstream, free_port
from support.credentials import basic, write_key
from support.gateway import RunningGateway, base_config, running_gateway
from support.metrics import metric_value
from support.oidc_provider import OidcProvider, authorize

SSO_METRIC = "registry_gateway_sso_logins_total"


def sso_config(upstream: str, port: int, provider: OidcProvider, directory: Path) -> dict[str, Any]:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sso.secret").write_text(provider.client_secret + "\n")
    config = base_config(upstream, port)
    config["token"]["key_file"] = str(write_key(directory / "token.pem"))
    config["sso"] = {"issuer": provider.issuer, "client_id": provider.client_id,
                     "client_secret_file": str(directory / "sso.secret"),
                     "admin_groups": ["registry-admins"], "cli_token_ttl": 3600}
    config["teams"]["platform"] = {"members": [], "groups": ["platform"]}
    config["repositories"].insert(0, {"match": "platform/*", "pull": ["team:platform"],
                                      "push": ["team:platform"], "comment": "the platform team"})
    return config


@pytest.fixture
def gateway(registry_upstream: Upstream, oidc_provider: OidcProvider,
            tmp_path: Path) -> Iterator[RunningGateway]:
    port = free_port()
    config = sso_config(registry_upstream.url, port, oidc_provider, tmp_path / "conf")
    with running_gateway(config, tmp_path / "gateway", port) as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def sign_in(browser: aiohttp.ClientSession, gateway: RunningGateway,
                  provider: OidcProvider, user: str, account: str | None = None) -> aiohttp.ClientResponse:
    """The whole sign-in; the gateway's answer to the callback (not followed)."""
    async with browser.get(f"{gateway.url}/ui/sso/start", allow_redirects=False) as resp:
        assert resp.status == 303, await resp.text()
        location = resp.headers["Location"]
    account = account or provider.login_for(user)
    callback = await authorize(browser, location, login=account,
                               password=str(provider.accounts[account]["password"]),
                               stop_at=f"{gateway.url}/ui/sso/callback")
    async with browser.get(callback, allow_redirects=False) as resp:
        await resp.read()
        return resp


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


async def cli_password(browser: aiohttp.ClientSession, gateway: RunningGateway) -> str:
    async with browser.get(f"{gateway.url}/ui/cli-password") as resp:
        assert resp.status == 200
        token = _csrf(await resp.text())
    async with browser.post(f"{gateway.url}/ui/cli-password", data={"csrf_token": token}) as resp:
        page = await resp.text()
        assert resp.status == 200, page[:300]
    found = re.search(r'<code id="cli-password"[^>]*>([^<]+)</code>', page)
    assert found, page[:500]
    return html.unescape(found.group(1))


async def token(gateway: RunningGateway, user: str, password: str, *scopes: str,
                offline: bool = False) -> tuple[int, dict[str, Any]]:
    params = [("service", "gateway.test"), *(("scope", s) for s in scopes)]
    if offline:
        params.append(("offline_token", "true"))
    async with aiohttp.ClientSession() as session, session.get(
            f"{gateway.url}/token", params=params, headers=basic(user, password)) as resp:
        return resp.status, await resp.json(content_type=None)


async def refresh(gateway: RunningGateway, refresh_token: str) -> int:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token,
            "service": "gateway.test", "scope": "repository:platform/app:pull"}
    async with aiohttp.ClientSession() as session, session.post(f"{gateway.url}/token",
                                                                data=form) as resp:
        return resp.status


def access_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    access: list[dict[str, Any]] = claims["access"]
    return access


async def test_cli_password_works_at_token_and_v2_and_dies_with_its_refresh_token(
        gateway: RunningGateway, oidc_provider: OidcProvider,
        browser: aiohttp.ClientSession) -> None:
    answer = await sign_in(browser, gateway, oidc_provider, "erin")
    assert answer.status == 303 and answer.headers["Location"] == "/ui/cli-password"
    password = await cli_password(browser, gateway)
    assert password.startswith("rgcli1_")
    status, body = await token(gateway, "erin", password, "repository:platform/app:push,pull",
                               "repository:myteam/app:pull", offline=True)
    assert status == 200
    # Groups reach rules through teams; an SSO admin group never makes a token an admin's.
    assert access_of(body) == [{"type": "repository", "name": "platform/app",
                                "actions": ["pull", "push"]}]
    cli_exp = int(time.time()) + 3600
    refresh_claims = jwt.decode(body["refresh_token"], options={"verify_signature": False})
    assert refresh_claims["exp"] <= cli_exp + 2 and refresh_claims["kind"] == "sso"
    assert await refresh(gateway, body["refresh_token"]) == 200
    async with aiohttp.ClientSession() as session, session.get(
            f"{gateway.url}/v2/", headers=basic("erin", password)) as resp:
        assert resp.status == 200
    assert (await token(gateway, "frank", password))[0] == 401  # bound to its name
    assert password not in gateway.log_text()


async def test_cli_password_is_refused_at_ui_login(
        gateway: RunningGateway, oidc_provider: OidcProvider,
        browser: aiohttp.ClientSession) -> None:
    await sign_in(browser, gateway, oidc_provider, "erin")
    password = await cli_password(browser, gateway)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as other:
        async with other.get(f"{gateway.url}/ui/login") as resp:
            csrf = _csrf(await resp.text())
        form = {"csrf_token": csrf, "username": "erin", "password": password}
        async with other.post(f"{gateway.url}/ui/login", data=form, allow_redirects=False) as resp:
            assert resp.status == 200 and "Incorrect username or password" in await resp.text()
            assert "rg_session" not in resp.cookies


async def test_not_before_disabled_and_sso_removed_refuse_cli_passwords_and_refresh(
        gateway: RunningGateway, oidc_provider: OidcProvider,
        browser: aiohttp.ClientSession) -> None:
    await sign_in(browser, gateway, oidc_provider, "erin")
    password = await cli_password(browser, gateway)
    status, body = await token(gateway, "erin", password, offline=True)
    assert status == 200
    config = gateway.copy_config()
    later = (datetime.now(UTC) + timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    earlier = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    steps: list[tuple[str, Any, bool]] = [
        ("not_before", {"erin": later}, False),
        ("not_before", {"erin": earlier}, True),
        ("disabled", ["Erin"], False),
        ("sso", None, False),
    ]
    for what, value, accepted in steps:
        changed = gateway.copy_config()
        if what == "not_before":
            changed["sso"]["not_before"] = value
        elif what == "disabled":
            changed["disabled_identities"] = value
        else:
            del changed["sso"]
        gateway.reload(changed, settle=1.0)
        expected = 200 if accepted else 401
        assert (await token(gateway, "erin", password))[0] == expected, what
        assert await refresh(gateway, body["refresh_token"]) == expected, what
        async with browser.get(f"{gateway.url}/ui/cli-password") as resp:
            assert resp.status == (200 if accepted else 404), what
        gateway.reload(config, settle=1.0)
        if not accepted:  # the page dropped the session cookie (not_before ends sessions too)
            await sign_in(browser, gateway, oidc_provider, "erin")


async def test_a_token_key_change_ends_cli_passwords(
        gateway: RunningGateway, oidc_provider: OidcProvider,
        browser: aiohttp.ClientSession) -> None:
    await sign_in(browser, gateway, oidc_provider, "erin")
    password = await cli_password(browser, gateway)
    assert (await token(gateway, "erin", password))[0] == 200
    gateway.stop()
    write_key(Path(gateway.config["token"]["key_file"]))
    gateway.start()
    assert (await token(gateway, "erin", password))[0] == 401


async def test_admin_groups_make_an_admin_of_the_pages_only(
        gateway: RunningGateway, oidc_provider: OidcProvider,
        browser: aiohttp.ClientSession) -> None:
    await sign_in(browser, gateway, oidc_provider, "erin")
    async with browser.get(f"{gateway.url}/ui/access") as resp:
        page = await resp.text()
        assert resp.status == 200
    assert oidc_provider.issuer in page and "registry-admins" in page
    assert oidc_provider.client_secret not in page and "sso.secret" not in page
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as frank:
        assert (await sign_in(frank, gateway, oidc_provider, "frank")).status == 303
        async with frank.get(f"{gateway.url}/ui/access") as resp:
            assert resp.status == 404
        async with frank.get(f"{gateway.url}/ui/") as resp:
            assert "Signed in as <strong>frank</strong>" in await resp.text()


@pytest.mark.parametrize("user", ["alice", "heidi"])
async def test_names_taken_or_claimed_twice_are_refused(
        gateway: RunningGateway, oidc_provider: OidcProvider, user: str) -> None:
    taken = metric_value(gateway.url, SSO_METRIC, {"result": "name_taken"})
    contested = metric_value(gateway.url, SSO_METRIC, {"result": "name_contested"})
    accounts = [a for a, p in oidc_provider.accounts.items() if p["preferred_username"] == user]
    answers = []
    for account in [*accounts, accounts[0]]:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
            answer = await sign_in(browser, gateway, oidc_provider, user, account)
            answers.append((answer.status, "rg_session" in answer.cookies))
    if user == "alice":  # a local account's name, whatever its case
        assert answers == [(403, False), (403, False)]
        assert metric_value(gateway.url, SSO_METRIC, {"result": "name_taken"}) == taken + 2
    else:  # two subjects claim "heidi": the first got in, then neither does
        assert answers == [(303, True), (403, False), (403, False)]
        assert metric_value(gateway.url, SSO_METRIC, {"result": "name_contested"}) == contested + 2


async def test_a_forged_callback_is_refused(gateway: RunningGateway,
                                            browser: aiohttp.ClientSession) -> None:
    before = metric_value(gateway.url, SSO_METRIC, {"result": "state"})
    async with browser.get(f"{gateway.url}/ui/sso/start", allow_redirects=False) as resp:
        assert resp.status == 303
    async with browser.get(f"{gateway.url}/ui/sso/callback?code=x&state=forged",
                           allow_redirects=False) as resp:
        assert resp.status == 400 and "rg_session" not in resp.cookies
    assert metric_value(gateway.url, SSO_METRIC, {"result": "state"}) == before + 1
