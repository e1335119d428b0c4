"""Each kind of viewer sees exactly the repositories it may pull, with tags and pull commands."""

from __future__ import annotations

from playwright.sync_api import Page, expect
from support.ui import World, login, repo_names, shot

PUBLIC = ["library/alpine", "library/tools/base"]
TEAM = ["myteam/app", "myteam/tools"]
EVERYTHING = sorted([*PUBLIC, *TEAM, "secret/other", "secret/thing"])


def test_anonymous_sees_public_repositories(world: World, page: Page) -> None:
    response = page.goto(f"{world.url}/ui/")
    assert response is not None and response.status == 200
    assert repo_names(page) == PUBLIC
    expect(page.get_by_text("Not signed in")).to_be_visible()
    pull = page.locator("code.pull", has_text="library/alpine:3.20")
    expect(pull).to_have_text(f"docker pull {world.gateway.host}/library/alpine:3.20")
    expect(page.get_by_role("link", name="Access")).to_have_count(0)
    headers = response.headers
    assert headers["content-security-policy"].startswith("default-src 'self'")
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    shot(page, "index-anonymous")


def test_team_member_sees_team_and_public(world: World, page: Page) -> None:
    login(page, world.url, "alice")
    assert page.url == f"{world.url}/ui/"
    expect(page.get_by_text("Signed in as alice")).to_be_visible()
    assert repo_names(page) == sorted([*TEAM, *PUBLIC])
    app = page.locator("li.repo", has=page.get_by_role("link", name="myteam/app", exact=True))
    # `latest` first, then newest-looking versions first.
    expect(app.locator(".tag")).to_have_text(["latest", "2.0", "1.0"])
    expect(app.locator("code.pull").first).to_have_text(
        f"docker pull {world.gateway.host}/myteam/app:latest")
    expect(page.locator("li.repo", has_text="myteam/tools")).to_contain_text("No tags yet.")
    expect(page.get_by_role("link", name="Access")).to_have_count(0)
    shot(page, "index-alice")


def test_user_without_grants_sees_public_only(world: World, page: Page) -> None:
    login(page, world.url, "bob")
    expect(page.get_by_text("Signed in as bob")).to_be_visible()
    assert repo_names(page) == PUBLIC
    shot(page, "index-bob")


def test_admin_sees_everything(world: World, page: Page) -> None:
    login(page, world.url, "carol")
    expect(page.get_by_text("Signed in as carol")).to_be_visible()
    assert repo_names(page) == EVERYTHING
    expect(page.get_by_role("link", name="Access")).to_be_visible()
    shot(page, "index-carol")


def test_search_filters_by_name(world: World, page: Page) -> None:
    login(page, world.url, "alice")
    page.get_by_label("Search by name").fill("tools")
    page.get_by_role("button", name="Search").click()
    assert repo_names(page) == ["library/tools/base", "myteam/tools"]
    page.goto(f"{world.url}/ui/?q=thing")  # exists, but alice may not pull it
    assert repo_names(page) == []
    expect(page.locator(".notice")).to_contain_text("No repository you may pull matches")
    shot(page, "index-search-empty")


def test_repository_page_shows_digest_size_type_and_platforms(world: World, page: Page) -> None:
    login(page, world.url, "alice")
    page.get_by_role("link", name="myteam/app", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("myteam/app")
    expect(page.locator(".lead")).to_contain_text("You may pull, push, delete")
    rows = page.locator("li.tag-card")
    expect(rows).to_have_count(3)
    single = rows.filter(has=page.get_by_role("heading", name="1.0", exact=True))
    expect(single).to_contain_text(world.pushed["myteam/app:1.0"].digest)
    expect(single).to_contain_text(f"{world.pushed['myteam/app:1.0'].size} B")
    expect(single).to_contain_text("OCI image manifest")
    expect(single).to_contain_text("linux/amd64")
    latest = rows.filter(has=page.get_by_role("heading", name="latest", exact=True))
    expect(latest).to_contain_text("linux/arm64/v8")
    multi = rows.filter(has=page.get_by_role("heading", name="2.0", exact=True))
    expect(multi).to_contain_text(world.pushed["myteam/app:2.0"].digest)
    expect(multi).to_contain_text("OCI image index")
    expect(multi.locator("ul.platforms li")).to_have_text([
        f"linux/amd64 {world.platforms['linux/amd64'].size} B",
        f"linux/arm64/v8 {world.platforms['linux/arm64/v8'].size} B",
    ])
    expect(multi.locator("code.pull")).to_have_text(
        f"docker pull {world.gateway.host}/myteam/app:2.0")
    shot(page, "repository-alice")


def test_public_repository_page_for_anonymous(world: World, page: Page) -> None:
    response = page.goto(f"{world.url}/ui/repositories/library/alpine")
    assert response is not None and response.status == 200
    expect(page.locator(".lead")).to_contain_text("You may pull.")
    expect(page.locator("li.tag-card")).to_have_count(1)
    shot(page, "repository-anonymous")


def test_narrow_screen_has_no_horizontal_page_scroll(world: World, page: Page) -> None:
    page.set_viewport_size({"width": 360, "height": 740})
    login(page, world.url, "alice")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360
    shot(page, "index-alice-narrow")
    page.goto(f"{world.url}/ui/repositories/myteam/app")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    shot(page, "repository-alice-narrow")


def test_pages_read_without_javascript(world: World, browser_no_js: Page) -> None:
    page = browser_no_js
    login(page, world.url, "alice")
    assert repo_names(page) == sorted([*TEAM, *PUBLIC])
    expect(page.locator("button.copy")).to_have_count(0)
    shot(page, "index-alice-no-js")
