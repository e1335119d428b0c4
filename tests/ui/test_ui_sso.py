"""Single sign-on in a real browser (Debian's chromium) at a real OpenID provider (npm
oidc-provider), then the CLI password from the page with real `docker login`, push and pull."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect
from support import Docker, Upstream, free_port, start_registry
from support.gateway import RunningGateway, base_config, running_gateway
from support.oidc_provider import OidcProvider
from support.ui import shot


@pytest.fixture(scope="module")
def gateway(oidc_provider: OidcProvider,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    directory = tmp_path_factory.mktemp("ui-sso")
    upstream: Upstream = start_registry(directory / "registry")
    try:
        (directory / "sso.secret").write_text(oidc_provider.client_secret)
        port = free_port()
        config = base_config(upstream.url, port)
        config["sso"] = {"issuer": oidc_provider.issuer, "client_id": oidc_provider.client_id,
                         "client_secret_file": str(directory / "sso.secret"),
                         "admin_groups": ["registry-admins"]}
        config["teams"]["platform"] = {"members": [], "groups": ["platform"]}
        config["repositories"].insert(0, {"match": "platform/*", "push": ["team:platform"],
                                          "comment": "the platform team"})
        with running_gateway(config, directory / "gateway", port) as running:
            yield running
    finally:
        upstream.close()


def sso_sign_in(page: Page, gateway: RunningGateway, provider: OidcProvider, user: str) -> None:
    page.goto(f"{gateway.url}/ui/login")
    page.get_by_role("link", name="Sign in with single sign-on").click()
    page.wait_for_url(f"{provider.issuer}/**")
    page.locator("input[name=login]").fill(provider.login_for(user))
    page.locator("input[name=password]").fill(provider.password_for(user))
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()  # the provider's consent page
    page.wait_for_url(f"{gateway.url}/ui/cli-password")


def test_sso_then_cli_password_then_docker_push_and_pull(
        gateway: RunningGateway, oidc_provider: OidcProvider, context: BrowserContext,
        page: Page, docker: Docker, busybox_image: str) -> None:
    sso_sign_in(page, gateway, oidc_provider, "erin")
    expect(page.get_by_text("Signed in as")).to_contain_text("erin")
    expect(page.get_by_role("link", name="Access")).to_be_visible()  # registry-admins: pages only
    shot(page, "sso-cli-password-offer")
    page.get_by_role("button", name="Create a CLI password").click()
    password = page.locator("#cli-password").inner_text().strip()
    assert password.startswith("rgcli1_")
    # copy.js put a Copy button beside it (the page reads well without it too).
    expect(page.locator("#cli-password + button.copy")).to_have_text("Copy")
    expect(page.locator("#cli-login")).to_have_text(
        f"docker login {gateway.host} -u erin --password-stdin")
    shot(page, "sso-cli-password")
    [session] = [c for c in context.cookies() if c["name"] == "rg_session"]
    assert session["httpOnly"] and session["path"] == "/ui"

    docker.login(gateway.host, "erin", password)
    config = (docker.config_dir / "config.json").read_text()
    assert "identitytoken" in config and password not in config  # a refresh token that dies with it
    ref = f"{gateway.host}/platform/app:1"
    docker.run("tag", busybox_image, ref)
    docker.run("push", ref)
    docker.run("rmi", ref)
    docker.run("pull", ref)
    docker.run("rmi", ref)
    assert password not in gateway.log_text()
    assert '"kind":"sso"' in gateway.log_text()


def test_a_name_taken_by_a_local_account_is_refused(
        gateway: RunningGateway, oidc_provider: OidcProvider, context: BrowserContext,
        page: Page) -> None:
    page.goto(f"{gateway.url}/ui/login")
    page.get_by_role("link", name="Sign in with single sign-on").click()
    page.locator("input[name=login]").fill(oidc_provider.login_for("alice"))
    page.locator("input[name=password]").fill(oidc_provider.password_for("alice"))
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(f"{gateway.url}/ui/sso/callback**")
    expect(page.get_by_role("heading", name="Account not usable here")).to_be_visible()
    assert not [c for c in context.cookies() if c["name"] == "rg_session"]
    shot(page, "sso-name-taken")


def test_no_sso_button_without_sso(page: Page, tmp_path: Path) -> None:
    upstream = start_registry(tmp_path / "registry")
    try:
        port = free_port()
        with running_gateway(base_config(upstream.url, port), tmp_path / "gw", port) as plain:
            page.goto(f"{plain.url}/ui/login")
            expect(page.get_by_role("link", name="Sign in with single sign-on")).to_have_count(0)
            assert page.goto(f"{plain.url}/ui/sso/start").status == 404  # type: ignore[union-attr]
    finally:
        upstream.close()
