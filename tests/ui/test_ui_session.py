"""Sign-in, the session cookie, CSRF, lockout, and a session that ends when its account does."""

from __future__ import annotations

import base64
import json
import secrets
import time
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page, expect
from support import Upstream, free_port
from support.gateway import running_gateway
from support.tls import make_certificates
from support.ui import World, csrf_token, login, repo_names, shot, ui_config


def session_cookies(context: BrowserContext) -> list[dict[str, object]]:
    return [dict(c) for c in context.cookies() if c["name"] == "rg_session"]


def test_login_sets_a_hardened_session_cookie(world: World, context: BrowserContext,
                                              page: Page) -> None:
    page.goto(f"{world.url}/ui/login")
    shot(page, "login")
    login(page, world.url, "alice")
    [cookie] = session_cookies(context)
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] in ("Lax", "Strict")
    assert cookie["secure"] is False  # plain HTTP on loopback; Secure under TLS (below)
    assert cookie["path"] == "/ui"
    assert cookie["expires"] > 0  # expires with ui.session_ttl, not only with the browser
    assert "alice-secret" not in page.content()


def test_wrong_password_shows_error_and_makes_no_session(world: World, context: BrowserContext,
                                                         page: Page) -> None:
    login(page, world.url, "bob", "not-bobs-password")
    expect(page.get_by_role("alert")).to_have_text("Incorrect username or password.")
    expect(page.get_by_label("Username")).to_have_value("bob")
    expect(page.get_by_label("Password")).to_have_value("")
    assert session_cookies(context) == []
    assert "not-bobs-password" not in page.content()
    shot(page, "login-wrong-password")
    page.goto(f"{world.url}/ui/")
    expect(page.get_by_text("Not signed in")).to_be_visible()


def test_disabled_account_cannot_sign_in(world: World, context: BrowserContext, page: Page) -> None:
    login(page, world.url, "dave")
    expect(page.get_by_role("alert")).to_have_text("Incorrect username or password.")
    assert session_cookies(context) == []


def test_post_without_csrf_token_is_403(world: World, context: BrowserContext, page: Page) -> None:
    page.goto(f"{world.url}/ui/login")
    form = {"username": "alice", "password": "alice-secret"}
    response = context.request.post(f"{world.url}/ui/login", form=form, max_redirects=0)
    assert response.status == 403
    assert "Form expired" in response.text()
    assert session_cookies(context) == []
    bad = {**form, "csrf_token": "x" * 43}
    assert context.request.post(f"{world.url}/ui/login", form=bad, max_redirects=0).status == 403
    good = {**form, "csrf_token": csrf_token(page)}
    assert context.request.post(f"{world.url}/ui/login", form=good, max_redirects=0).status == 303
    assert len(session_cookies(context)) == 1

    # Signed in, a logout without the token is refused and the session stays.
    response = context.request.post(f"{world.url}/ui/logout", form={}, max_redirects=0)
    assert response.status == 403
    page.goto(f"{world.url}/ui/")
    expect(page.get_by_text("Signed in as alice")).to_be_visible()
    page.set_content(response.text())
    shot(page, "csrf-403")


def test_csrf_token_of_one_session_does_not_fit_another(world: World, browser: Browser) -> None:
    one, two = browser.new_context(), browser.new_context()
    try:
        a, b = one.new_page(), two.new_page()
        login(a, world.url, "alice")
        login(b, world.url, "bob")
        response = two.request.post(f"{world.url}/ui/logout", form={"csrf_token": csrf_token(a)},
                                    max_redirects=0)
        assert response.status == 403
    finally:
        one.close()
        two.close()


def test_logout_ends_the_session(world: World, context: BrowserContext, page: Page) -> None:
    login(page, world.url, "alice")
    stolen = session_cookies(context)
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state()
    expect(page.get_by_text("Not signed in")).to_be_visible()
    assert session_cookies(context) == []
    # A copy of the cookie kept from before is no longer honoured.
    context.add_cookies(stolen)  # type: ignore[arg-type]
    page.goto(f"{world.url}/ui/")
    expect(page.get_by_text("Not signed in")).to_be_visible()
    assert repo_names(page) == ["library/alpine", "library/tools/base"]


def test_forged_session_cookie_is_ignored(world: World, context: BrowserContext, page: Page) -> None:
    login(page, world.url, "bob")
    [cookie] = session_cookies(context)
    payload, _, mac = str(cookie["value"]).partition(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["sub"] = "carol"
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    context.add_cookies([{**cookie, "value": f"{forged}.{mac}"}])  # type: ignore[list-item]
    page.goto(f"{world.url}/ui/access")
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    expect(page.get_by_text("Not signed in")).to_be_visible()


def test_lockout_is_a_429_page(world: World, context: BrowserContext, page: Page) -> None:
    for guess in ("guess-1", "guess-2", "guess-3"):  # distinct: a retried attempt counts once
        login(page, world.url, "mallory", guess)
        expect(page.get_by_role("alert")).to_have_text("Incorrect username or password.")
    page.goto(f"{world.url}/ui/login")
    page.get_by_label("Username").fill("mallory")
    page.get_by_label("Password").fill("guess-4")
    with page.expect_response(f"{world.url}/ui/login") as info:
        page.get_by_role("button", name="Sign in").click()
    response = info.value
    assert response.status == 429
    assert int(response.headers["retry-after"]) > 0
    expect(page.get_by_role("heading", level=1)).to_have_text("Too many attempts")
    assert session_cookies(context) == []
    shot(page, "login-locked-out")


def test_disabled_account_loses_its_session_on_reload(
    registry_upstream: Upstream, tmp_path: Path, context: BrowserContext, page: Page
) -> None:
    registry_upstream.seed(["myteam/app"])
    port = free_port()
    with running_gateway(ui_config(registry_upstream.url, port), tmp_path / "gw", port) as gateway:
        login(page, gateway.url, "alice")
        assert repo_names(page) == ["myteam/app"]
        config = gateway.copy_config()
        config["users"]["alice"]["disabled"] = True
        gateway.reload(config, settle=1.0)
        page.goto(f"{gateway.url}/ui/")
        expect(page.get_by_text("Not signed in")).to_be_visible()
        assert repo_names(page) == []
        assert session_cookies(context) == []  # the dead session's cookie is deleted

        # Enabled again, the old cookie does not come back to life: it was deleted.
        config["users"]["alice"]["disabled"] = False
        gateway.reload(config, settle=1.0)
        page.goto(f"{gateway.url}/ui/")
        expect(page.get_by_text("Not signed in")).to_be_visible()


def test_tls_session_cookie_is_secure_and_survives_a_restart(
    registry_upstream: Upstream, tmp_path: Path, browser: Browser
) -> None:
    """Under server.tls the cookies are Secure; with ui.session_secret_file a restart keeps them."""
    certs = make_certificates(tmp_path / "certs", "localhost")
    secret = tmp_path / "session.key"
    secret.write_text(secrets.token_urlsafe(48))
    registry_upstream.seed(["myteam/app"])
    port = free_port()
    config = ui_config(registry_upstream.url, port)
    config["server"].update(public_url=f"https://localhost:{port}",
                            tls={"cert": str(certs.server_cert), "key": str(certs.server_key)})
    config["ui"] = {"session_secret_file": str(secret), "session_ttl": 600}
    context = browser.new_context(ignore_https_errors=True)
    try:
        page = context.new_page()
        with running_gateway(config, tmp_path / "gw", port) as gateway:
            login(page, gateway.url, "alice")
            cookies = {c["name"]: c for c in context.cookies()}
            assert cookies["rg_session"]["secure"] is True
            assert cookies["rg_csrf"]["secure"] is True
            assert 0 < cookies["rg_session"]["expires"] - time.time() <= 600
            gateway.stop()
            gateway.start()
            page.goto(f"{gateway.url}/ui/")
            expect(page.get_by_text("Signed in as alice")).to_be_visible()
            shot(page, "index-alice-tls")
    finally:
        context.close()
