"""10,000 repositories seeded straight into the registry's storage: pages stay small and fast."""

from __future__ import annotations

import time
from pathlib import Path

from playwright.sync_api import Page, expect
from support import Upstream, free_port
from support.gateway import base_config, running_gateway
from support.ui import login, repo_names, shot

COUNT = 10_000
PAGE_SIZE = 50
MAX_PAGE_BYTES = 64 * 1024


def test_ten_thousand_repositories_are_paged(registry_upstream: Upstream, tmp_path: Path,
                                              page: Page) -> None:
    registry_upstream.seed(f"bulk/r{i:05d}" for i in range(COUNT))
    registry_upstream.seed(["library/zz-last"])
    port = free_port()
    config = base_config(registry_upstream.url, port)
    config["repositories"].append({"match": "bulk/**", "pull": ["team:myteam"],
                                   "comment": "many repositories"})
    with running_gateway(config, tmp_path / "gw", port) as gateway:
        login(page, gateway.url, "alice")
        started = time.monotonic()
        response = page.goto(f"{gateway.url}/ui/")
        first_page = time.monotonic() - started
        assert response is not None and response.status == 200
        assert len(response.body()) < MAX_PAGE_BYTES
        names = repo_names(page)
        assert names == [f"bulk/r{i:05d}" for i in range(PAGE_SIZE)]
        assert first_page < 10, f"the first page took {first_page:.2f} s"
        shot(page, "index-10k-alice")

        page.get_by_role("link", name="Next page").click()
        assert repo_names(page) == [f"bulk/r{i:05d}" for i in range(PAGE_SIZE, 2 * PAGE_SIZE)]
        expect(page.get_by_role("link", name="First page")).to_be_visible()

        page.goto(f"{gateway.url}/ui/?q=r0999")
        assert repo_names(page) == [f"bulk/r{i:05d}" for i in range(9990, 10_000)]
        expect(page.get_by_role("link", name="Next page")).to_have_count(0)

        # bob may pull none of them: the page walks the whole catalog and finds the one.
        page.context.clear_cookies()
        login(page, gateway.url, "bob")
        assert repo_names(page) == ["library/zz-last"]
