"""Private and missing repositories look alike; /ui/access is for admins and explains decisions."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from support.ui import World, login, shot


def fetch(context: BrowserContext, url: str) -> tuple[int, str]:
    response = context.request.get(url, max_redirects=0)
    return response.status, response.text()


@pytest.mark.parametrize("user", [None, "bob", "alice"])
def test_private_and_missing_repository_pages_are_alike(
    world: World, context: BrowserContext, page: Page, user: str | None
) -> None:
    if user:
        login(page, world.url, user)
    private = "secret/thing" if user == "alice" else "myteam/app"
    answers = {name: fetch(context, f"{world.url}/ui/repositories/{name}")
               for name in (private, "myteam/does-not-exist", "nope/nothing", "Bad..Name")}
    assert answers[private][0] == 404
    assert len(set(answers.values())) == 1, "a private repository must look like a missing one"
    # The access page is the same 404 for anyone but an admin.
    assert fetch(context, f"{world.url}/ui/access") == answers[private]
    page.goto(f"{world.url}/ui/repositories/{private}")
    shot(page, f"not-found-{user or 'anonymous'}")


def test_admin_sees_a_private_repository(world: World, page: Page) -> None:
    login(page, world.url, "carol")
    response = page.goto(f"{world.url}/ui/repositories/secret/thing")
    assert response is not None and response.status == 200
    expect(page.locator("li.tag-card")).to_contain_text(world.pushed["secret/thing:1"].digest)


def test_access_page_lists_rules_accounts_teams_and_reload(world: World, page: Page) -> None:
    login(page, world.url, "carol")
    page.get_by_role("link", name="Access").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Access")
    rules = page.locator("#rules tbody tr")
    expect(rules).to_have_count(2)
    expect(rules.nth(0)).to_contain_text("myteam/*")
    expect(rules.nth(0)).to_contain_text("private")
    expect(rules.nth(0)).to_contain_text("team:myteam")
    expect(rules.nth(0)).to_contain_text("service:ci-bot")
    expect(rules.nth(0)).to_contain_text("user:alice")
    expect(rules.nth(0)).to_contain_text("the team's own images")
    expect(rules.nth(1)).to_contain_text("library/**")
    expect(rules.nth(1)).to_contain_text("public")
    expect(rules.nth(1)).to_contain_text("everyone")
    accounts = page.locator("#accounts tbody tr")
    expect(accounts.filter(has_text="dave")).to_contain_text("disabled")
    expect(accounts.filter(has_text="old-bot")).to_contain_text("expired")
    expect(accounts.filter(has_text="carol")).to_contain_text("admin")
    expect(accounts.filter(has_text="soon-bot").locator(".warn")).to_contain_text("expires in 2 days")
    expect(accounts.filter(has_text="ci-bot").locator(".warn")).to_have_count(0)
    expect(page.locator("#teams")).to_contain_text("myteam")
    expect(page.locator("#teams")).to_contain_text("alice, dave")
    expect(page.locator("#reload")).to_contain_text("loaded at start")
    content = page.content()
    assert "$2b$" not in content and "secret" not in content.replace("secret/", "")
    shot(page, "access-carol")


@pytest.fixture(scope="module")
def admin_page(world: World, browser: Browser) -> Iterator[Page]:
    """carol, signed in once for the explain questions."""
    context = browser.new_context()
    page = context.new_page()
    login(page, world.url, "carol")
    yield page
    context.close()


def cli_explain(world: World, user: str, repository: str, action: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "explain", "--config", str(world.gateway.config_path),
         user, repository, action], capture_output=True, text=True, check=False, timeout=60)
    return result.stdout.strip()


@pytest.mark.parametrize(("user", "repository", "action", "verdict"), [
    ("alice", "myteam/app", "push", 'allow: rule 0 match "myteam/*" (the team\'s own images)'),
    ("bob", "myteam/app", "pull", 'deny: rule 0 match "myteam/*" (the team\'s own images)'),
    ("-", "library/alpine", "pull", 'allow: rule 1 match "library/**" (public base images)'),
    ("-", "library/alpine", "push", 'deny: rule 1 match "library/**" (public base images)'),
    ("bob", "secret/thing", "pull", "deny: no rule matched"),
    ("carol", "secret/thing", "delete", "allow: admin"),
    ("dave", "myteam/app", "pull", "deny: disabled"),
    ("old-bot", "myteam/app", "pull", "deny: expired"),
    ("zed", "library/alpine", "pull", "deny: unknown account"),
])
def test_explain_form_answers_like_the_cli(
    world: World, admin_page: Page, user: str, repository: str, action: str, verdict: str
) -> None:
    page = admin_page
    page.goto(f"{world.url}/ui/access")
    page.get_by_label("User").fill(user)
    page.get_by_label("Repository").fill(repository)
    page.get_by_label("Action").select_option(action)
    page.get_by_role("button", name="Explain").click()
    result = page.locator("#explain-result")
    expect(result).to_have_text(verdict)
    assert cli_explain(world, user, repository, action) == verdict
    if (user, action) == ("alice", "push"):
        shot(page, "access-explain")


def test_explain_refuses_a_bad_question(world: World, page: Page) -> None:
    login(page, world.url, "carol")
    page.goto(f"{world.url}/ui/access?user=alice&repository=Not..Valid&action=pull")
    expect(page.locator("#explain-result")).to_have_text("'Not..Valid' is not a valid repository name")
