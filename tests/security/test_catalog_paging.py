"""Catalog paging as pure logic, against a model of distribution 2.8's catalog (no I/O).

Both sources of names (the snapshot and the range walks) must give exactly the visible names in
the registry's order, page after page, for any names, visibility, prefixes and page size.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.config.schema import RuleSpec
from gateway.policy.accounts import Account
from gateway.policy.decide import Policy
from gateway.policy.names import catalog_key, valid_name
from gateway.policy.subject import Subject
from gateway.policy.visibility import merge_prefixes, pull_prefixes
from gateway.upstream.catalog import (
    UPSTREAM_PAGE,
    CatalogLister,
    Listing,
    PageTooLarge,
    page_size,
    start_after,
)


class ModelRegistry:
    """distribution 2.8.2's `_catalog`: path order, `last` exclusive, at most `maxentries`."""

    def __init__(self, names: list[str], maxentries: int = UPSTREAM_PAGE) -> None:
        self.names = sorted(set(names), key=catalog_key)
        self.maxentries = maxentries
        self.requests = 0

    async def fetch(self, n: int, last: str) -> list[str]:
        self.requests += 1
        if n > self.maxentries:
            raise PageTooLarge
        after = [name for name in self.names if catalog_key(name) > catalog_key(last)]
        return after[:n]


_COMPONENT = st.sampled_from(["a", "b", "a0", "a-b", "a.b", "a_b", "ab", "b0", "z", "0", "9a"])
NAMES = st.lists(st.lists(_COMPONENT, min_size=1, max_size=3).map("/".join), max_size=60)
PREFIXES = st.lists(st.sampled_from(["", "a", "a/", "a-", "a0", "b", "b/", "z/", "0", "a/b",
                                     "a.b/", "9"]), max_size=4)


async def walk(lister: CatalogLister, n: int, visible: set[str],
               prefixes: tuple[str, ...] | None) -> list[list[str]]:
    async def is_visible(name: str) -> bool:
        return name in visible

    pages, last = [], ""
    for _ in range(1000):
        page = await lister.page(n, last, is_visible, prefixes)
        pages.append(page.repositories)
        link = page.link(n)
        assert (link is not None) == page.more
        if link is None:
            return pages
        assert page.repositories and len(page.repositories) == n
        last = page.repositories[-1]
    raise AssertionError("the walk did not end")


def expected(names: list[str], visible: set[str], prefixes: tuple[str, ...] | None) -> list[str]:
    keep = [n for n in set(names) if n in visible and valid_name(n)
            and (prefixes is None or any(n.startswith(p) for p in prefixes))]
    return sorted(keep, key=catalog_key)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=NAMES, data=st.data(), n=st.integers(1, 7), raw_prefixes=PREFIXES)
async def test_snapshot_and_range_walk_page_exactly_the_visible_names(
        names: list[str], data: st.DataObject, n: int, raw_prefixes: list[str]) -> None:
    visible = set(data.draw(st.lists(st.sampled_from(names), unique=True))) if names else set()
    prefixes = merge_prefixes(raw_prefixes) if raw_prefixes else None
    want = expected(names, visible, prefixes)
    registry = ModelRegistry(names, maxentries=3)  # tiny pages: every walk crosses several

    walker = CatalogLister(None, fetch=registry.fetch, walk_page=3)  # no snapshot: range walks
    walker._start_refresh = lambda: None  # type: ignore[method-assign]
    pages = await walk(walker, n, visible, prefixes)
    assert [name for page in pages for name in page] == want

    snapshot = CatalogLister(None, fetch=registry.fetch)
    await snapshot._rebuild()  # probes 100,000, then 10,000, 1,000, 100, 10, 1
    assert snapshot._listing is not None
    pages = await walk(snapshot, n, visible, prefixes)
    assert [name for page in pages for name in page] == want
    assert all(len(p) == n for p in pages[:-1]) and len(pages[-1]) <= n


@given(prefix=st.text(alphabet="ab0.-_/z", min_size=1, max_size=6),
       name=st.text(alphabet="ab0.-_/z9", min_size=1, max_size=8))
@example(prefix="a0", name="a-b")  # '0' - 1 is '/', which the registry compares as NUL
@example(prefix="a/", name="a")
@example(prefix="a/", name="a-b")
def test_start_after_is_a_tight_cursor(prefix: str, name: str) -> None:
    """Every name with the prefix sorts after the cursor; no valid name without it lies between."""
    cursor = catalog_key(start_after(prefix))
    key = catalog_key(name)
    if name.startswith(prefix):
        assert key > cursor
    elif valid_name(name) and key > cursor:
        assert key > catalog_key(prefix)


def test_merge_prefixes() -> None:
    assert merge_prefixes(["team/", "team/app", "lib/", "team-x"]) == ("lib/", "team/", "team-x")
    assert merge_prefixes(["a", ""]) is None
    assert merge_prefixes([]) == ()


def test_pull_prefixes_follow_the_rules() -> None:
    rules = [RuleSpec(match="myteam/*", pull=("user:alice",)),
             RuleSpec(match="library/**", visibility="public"),
             RuleSpec(match="*/shared", pull=("user:bob",)),
             RuleSpec(match="secret/**", push=("user:sam",))]
    accounts = {name: Account(name, "user", b"x", admin=name == "root")
                for name in ("alice", "bob", "sam", "eve", "root")}
    policy = Policy.build(accounts, rules)
    now = datetime.now(UTC)

    def prefixes(name: str | None) -> tuple[str, ...] | None:
        subject = None if name is None else policy.subject_for(name) or Subject(name)
        return pull_prefixes(policy, subject, now)

    assert prefixes("alice") == ("library/", "myteam/")
    assert prefixes(None) == ("library/",)
    assert prefixes("bob") is None  # a rule that starts with a wildcard
    assert prefixes("sam") == ("library/", "secret/")  # push implies pull
    assert prefixes("root") is None
    assert prefixes("nobody") == ()  # an account the config does not know


@pytest.mark.parametrize(("raw", "n"), [(None, 100), ("", 100), ("0", 0), ("7", 7),
                                        ("1000", 1000), ("1001", 1000), ("9" * 5000, 1000),
                                        ("-1", None), ("1e3", None), ("٣", None), (" 1", None)])
def test_page_size(raw: str | None, n: int | None) -> None:
    assert page_size(raw) == n


async def test_snapshot_probes_a_large_page_then_falls_back() -> None:
    names = [f"r/{i:04d}" for i in range(2500)]
    registry = ModelRegistry(names)
    lister = CatalogLister(None, fetch=registry.fetch)
    await lister._rebuild()
    assert lister._listing is not None and len(lister._listing.names) == 2500
    assert registry.requests == 2 + 3  # two refused probes, then three pages of 1000


async def test_a_name_written_through_the_gateway_is_listed_at_once() -> None:
    registry = ModelRegistry(["a/x"])
    lister = CatalogLister(None, fetch=registry.fetch)
    await lister._rebuild()
    lister.note("a/new")

    async def everything(name: str) -> bool:
        return True

    assert (await lister.page(10, "", everything)).repositories == ["a/new", "a/x"]


def test_listing_drops_names_outside_the_grammar() -> None:
    listing = Listing.of(["Upper/case", "ok/name", "bad//name", "a" * 256, "ok/name"], 0.0)
    assert listing.names == ("ok/name",)
