"""Private and missing repositories look alike; /ui/access is for admins and explains decisions."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from support import Upstream, free_port, start_registry
from support.gateway import RunningGateway, running_gateway
from support.ui import World, login, repo_names, shot, ui_config

BIND_PASSWORD = "bind-pw-never-shown-7f3a"
HOMES = ["home/alice/app", "home/alice/tools/x", "home/alicex/app", "home/bob/app", "other/app"]


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
    ("alice", "myteam/app", "push",
     'allow: rule 0 match "myteam/*" (the team\'s own images), granted to team:myteam'),
    ("bob", "myteam/app", "pull", 'deny: rule 0 match "myteam/*" (the team\'s own images)'),
    ("-", "library/alpine", "pull",
     'allow: rule 1 match "library/**" (public base images), granted to everyone (public)'),
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


@pytest.fixture(scope="module")
def directory_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """A gateway with a directory section (never asked: only local accounts sign in here), teams
    with groups and a personal namespace rule."""
    directory = tmp_path_factory.mktemp("ui-directory")
    upstream: Upstream = start_registry(directory / "registry")
    try:
        upstream.seed(HOMES)
        (directory / "bind.pw").write_text(BIND_PASSWORD + "\n")
        port = free_port()
        config = ui_config(upstream.url, port)
        config["directory"] = {
            "url": ["ldap://127.0.0.1:9", "ldap://127.0.0.2:9"], "start_tls": True,
            "bind_dn": "cn=registry,ou=services,dc=test",
            "bind_password_file": str(directory / "bind.pw"),
            "user_base": "ou=people,dc=test", "user_filter": "(objectClass=inetOrgPerson)",
            "group_base": "ou=groups,dc=test", "admin_groups": ["registry-admins"],
            "timeout": 3, "cache_ttl": 120}
        config["teams"]["platform"] = {"members": ["bob"], "groups": ["platform-admins", "ops"]}
        config["repositories"][:0] = [
            {"match": "home/{user}/**", "pull": ["authenticated"], "push": ["authenticated"],
             "comment": "own home"},
            {"match": "platform/*", "push": ["team:platform"], "comment": "the platform team"},
        ]
        with running_gateway(config, directory / "gateway", port) as gateway:
            yield gateway
    finally:
        upstream.close()


def test_access_page_shows_team_groups_and_directory_settings(
        directory_gateway: RunningGateway, context: BrowserContext, page: Page) -> None:
    url = directory_gateway.url
    login(page, url, "carol")
    status, html = fetch(context, f"{url}/ui/access")
    assert status == 200
    page.goto(f"{url}/ui/access")
    teams = page.locator("#teams")
    expect(teams).to_contain_text("platform")
    expect(teams.locator(".team-groups")).to_have_text("groups: platform-admins, ops")
    expect(page.locator("#accounts tbody tr").filter(has_text="bob")).to_contain_text("platform")
    settings = page.locator("#directory")
    for shown in ("ldap://127.0.0.1:9", "ldap://127.0.0.2:9", "cn=registry,ou=services,dc=test",
                  str(Path(directory_gateway.config["directory"]["bind_password_file"])),
                  "ou=people,dc=test", "(objectClass=inetOrgPerson)", "uid", "ou=groups,dc=test",
                  "(member={dn})", "cn", "registry-admins", "3.0 s", "120 s"):
        expect(settings).to_contain_text(shown)
    expect(settings).to_contain_text("StartTLSyes")
    assert BIND_PASSWORD not in html and BIND_PASSWORD not in page.content()
    shot(page, "access-directory")


@pytest.mark.parametrize(("query", "verdict"), [
    ("user=user:dora&groups=ops,platform-admins&repository=platform/app&action=push",
     'allow: rule 1 match "platform/*" (the platform team), '
     "granted to team:platform via directory group ops"),
    ("user=bob&repository=platform/app&action=pull",
     'allow: rule 1 match "platform/*" (the platform team), '
     "granted to team:platform (push grants pull)"),
    ("user=user:dora&groups=&repository=home/dora/x&action=push",
     'allow: rule 0 match "home/{user}/**" (own home), granted to authenticated'),
    ("user=bob&repository=home/alice/app&action=pull", "deny: no rule matched"),
])
def test_explain_form_names_the_team_and_group(
        directory_gateway: RunningGateway, context: BrowserContext, page: Page, query: str,
        verdict: str) -> None:
    login(page, directory_gateway.url, "carol")
    page.goto(f"{directory_gateway.url}/ui/access?{query}")
    expect(page.locator("#explain-result")).to_have_text(verdict)


@pytest.mark.parametrize(("user", "visible"), [
    ("alice", ["home/alice/app", "home/alice/tools/x"]),
    ("bob", ["home/bob/app"]),
    (None, []),
])
def test_pages_show_each_viewer_only_its_own_home(
        directory_gateway: RunningGateway, context: BrowserContext, page: Page,
        user: str | None, visible: list[str]) -> None:
    url = directory_gateway.url
    if user:
        login(page, url, user)
    page.goto(f"{url}/ui/")
    assert repo_names(page) == visible
    for name in HOMES:
        status, _ = fetch(context, f"{url}/ui/repositories/{name}")
        assert status == (200 if name in visible else 404), name
