"""Fixtures for the web page tests: a real registry with tiny images, the real gateway, chromium.

Playwright drives Debian's chromium (never a downloaded browser). Screenshots of every page go to
artifacts/ui/ (gitignored) so a run can be looked at afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from support import Upstream, free_port, start_registry
from support.gateway import running_gateway
from support.ui import World, ui_config
from support.ui_images import Pushed, push_image, push_index

CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


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
        port = free_port()
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


@pytest.fixture
def browser_no_js(browser: Browser) -> Iterator[Page]:
    ctx = browser.new_context(java_script_enabled=False, viewport={"width": 1200, "height": 800})
    yield ctx.new_page()
    ctx.close()
