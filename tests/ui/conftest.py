"""Fixtures for the web page tests: a real registry with tiny images, the real gateway, chromium.

Playwright drives Debian's chromium (never a downloaded browser). Screenshots of every page go to
artifacts/ui/ (gitignored) so a run can be looked at afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from support import Upstream, start_registry
from support.gateway import PASSWORDS, RunningGateway, base_config, new_port, password_hash, running_gateway
from ui_images import Pushed, push_image, push_index

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "ui"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SOON_BOT_PASSWORD = "soon-bot-secret"


@dataclass
class World:
    gateway: RunningGateway
    upstream: Upstream
    pushed: dict[str, Pushed]
    platforms: dict[str, Pushed]

    @property
    def url(self) -> str:
        return self.gateway.url


def ui_config(upstream_url: str, port: int) -> dict[str, Any]:
    config = base_config(upstream_url, port)
    config["auth"] = {"lockout": {"max_failures": 3, "window": 300, "cooldown": 300}}
    soon = datetime.now(UTC) + timedelta(days=3)
    config["service_accounts"]["soon-bot"] = {
        "password_hash": password_hash(SOON_BOT_PASSWORD),
        "expires": soon.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    config["teams"]["ops"] = {"members": ["carol", "soon-bot"]}
    return config


def seed_world(upstream: Upstream) -> tuple[dict[str, Pushed], dict[str, Pushed]]:
    base = upstream.url
    pushed = {
        "myteam/app:1.0": push_image(base, "myteam/app", "1.0"),
        "myteam/app:latest": push_image(base, "myteam/app", "latest", arch="arm64", variant="v8"),
        "library/alpine:3.20": push_image(base, "library/alpine", "3.20"),
        "secret/thing:1": push_image(base, "secret/thing", "1"),
    }
    index, platforms = push_index(base, "myteam/app", "2.0",
                                  (("linux", "amd64", ""), ("linux", "arm64", "v8")))
    pushed["myteam/app:2.0"] = index
    upstream.seed(["myteam/tools", "library/tools/base", "secret/other"])
    return pushed, platforms


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    directory = tmp_path_factory.mktemp("ui-world")
    upstream = start_registry(directory / "registry")
    try:
        pushed, platforms = seed_world(upstream)
        port = new_port()
        with running_gateway(ui_config(upstream.url, port), directory / "gateway", port) as gateway:
            yield World(gateway, upstream, pushed, platforms)
    finally:
        upstream.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Module scope: sync_playwright keeps an event loop running in this thread, which would
    # break every asyncio test collected after the UI tests if it lived for the session.
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1200, "height": 800})
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def shot(page: Page, name: str) -> None:
    """Save a full-page screenshot as a test artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def login(page: Page, base: str, user: str, password: str | None = None) -> None:
    page.goto(f"{base}/ui/login")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(password if password is not None else PASSWORDS[user])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def repo_names(page: Page) -> list[str]:
    return page.locator("li.repo h2").all_inner_texts()


def csrf_token(page: Page) -> str:
    value = page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert value and re.fullmatch(r"[A-Za-z0-9_-]{20,}", value)
    return value


@pytest.fixture
def browser_no_js(browser: Browser) -> Iterator[Page]:
    ctx = browser.new_context(java_script_enabled=False, viewport={"width": 1200, "height": 800})
    yield ctx.new_page()
    ctx.close()
