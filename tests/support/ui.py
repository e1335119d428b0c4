"""The web page tests' world and browser steps: the gateway config they run, what was pushed,
screenshots to artifacts/ui/ (gitignored), signing in, reading the page."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

from support.gateway import PASSWORDS, RunningGateway, base_config, password_hash
from support.registry import Upstream
from support.ui_images import Pushed

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "ui"
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
