"""/ui/login for directory users, driven over plain HTTP with the CSRF flow a browser follows.

The session's real slapd (tests/support/ldap/people.ldif): heidi (group platform, a DN with an
escaped comma) and erin are directory users; alice is a local account that shadows the
directory's alice. A test that stops slapd starts it again before it ends.
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from support import Slapd, Upstream, free_port, start_registry
from support.gateway import PASSWORDS, RunningGateway, running_gateway
from support.slapd import PASSWORDS as DIRECTORY_PASSWORDS
from support.ui import ui_config
from support.ui_images import push_image

BAD_LOGIN = "Incorrect username or password."


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    registry = start_registry(tmp_path_factory.mktemp("ui-directory-registry"))
    try:
        for repository in ("platform/app", "myteam/app", "secret/thing"):
            push_image(registry.url, repository, "1")
        yield registry
    finally:
        registry.close()


@pytest.fixture
def gateway(slapd: Slapd, upstream: Upstream, tmp_path: Path) -> Iterator[RunningGateway]:
    secret = tmp_path / "bind-password"
    secret.write_text(slapd.bind_password + "\n")
    port = free_port()
    config = ui_config(upstream.url, port)
    config["directory"] = {
        "url": slapd.url, "bind_dn": slapd.bind_dn, "bind_password_file": str(secret),
        "user_base": slapd.user_base, "group_base": slapd.group_base, "timeout": 2, "cache_ttl": 60,
    }
    config["teams"]["platform"] = {"groups": ["platform"]}
    config["repositories"].append(
        {"match": "platform/*", "pull": ["team:platform"], "comment": "the platform group's"})
    with running_gateway(config, tmp_path / "gateway", port) as gw:
        yield gw


@pytest.fixture
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def sign_in(browser: aiohttp.ClientSession, gateway: RunningGateway, username: str,
                  password: str) -> tuple[int, str, str]:
    """GET the form (its CSRF token), POST it: (status, body, Location)."""
    async with browser.get(f"{gateway.url}/ui/login") as resp:
        assert resp.status == 200
        found = re.search(r'name="csrf_token" value="([^"]+)"', await resp.text())
        assert found
    form = {"csrf_token": found.group(1), "username": username, "password": password}
    async with browser.post(f"{gateway.url}/ui/login", data=form, allow_redirects=False) as resp:
        return resp.status, await resp.text(), resp.headers.get("Location", "")


def has_session(browser: aiohttp.ClientSession) -> bool:
    return any(cookie.key == "rg_session" for cookie in browser.cookie_jar)


async def repositories(browser: aiohttp.ClientSession, gateway: RunningGateway) -> tuple[str, list[str]]:
    async with browser.get(f"{gateway.url}/ui/") as resp:
        assert resp.status == 200
        page = await resp.text()
    names = re.findall(r'<h2><a href="/ui/repositories/[^"]+">([^<]+)</a></h2>', page)
    return page, [html.unescape(name) for name in names]


async def test_a_directory_user_signs_in_and_sees_her_repositories(
        gateway: RunningGateway, browser: aiohttp.ClientSession) -> None:
    status, _, location = await sign_in(browser, gateway, "heidi", DIRECTORY_PASSWORDS["heidi"])
    assert (status, location) == (303, "/ui/")
    assert has_session(browser)
    page, names = await repositories(browser, gateway)
    assert "Signed in as <strong>heidi</strong>" in page
    assert names == ["platform/app"]  # her group's team: not myteam/app, not secret/thing
    assert DIRECTORY_PASSWORDS["heidi"] not in page


async def test_a_wrong_password_and_an_unknown_user_get_the_same_page(
        gateway: RunningGateway) -> None:
    answers = []
    for username, password in (("heidi", "not-heidis-password"), ("nobody-here", "whatever")):
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
            status, page, location = await sign_in(browser, gateway, username, password)
            assert not has_session(browser)
        assert BAD_LOGIN in page and password not in page
        # The form comes back with the name typed in it and a fresh CSRF token: nothing else differs.
        page = re.sub(r'name="csrf_token" value="[^"]+"', "CSRF", page).replace(username, "NAME")
        answers.append((status, location, page))
    assert answers[0] == answers[1]
    assert answers[0][0] == 200


async def test_a_login_not_remembered_is_unavailable_while_the_directory_is_down(
        gateway: RunningGateway, slapd: Slapd) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as first:
        assert (await sign_in(first, gateway, "heidi", DIRECTORY_PASSWORDS["heidi"]))[0] == 303
    slapd.stop()
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
            status, page, _ = await sign_in(browser, gateway, "erin", DIRECTORY_PASSWORDS["erin"])
            assert status == 503
            assert "Sign-in unavailable" in page and BAD_LOGIN not in page
            assert not has_session(browser)
        # Remembered (within cache_ttl) and local logins keep working.
        for username, password in (("heidi", DIRECTORY_PASSWORDS["heidi"]),
                                   ("alice", PASSWORDS["alice"])):
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as other:
                assert (await sign_in(other, gateway, username, password))[0] == 303, username
                assert has_session(other)
    finally:
        slapd.start()
