"""/v2/_catalog through the running gateway: complete, stable, filtered paging for every identity.

The registry holds names of every kind: visible to some, hidden by a rule, matched by no rule,
nested below a one-component glob, outside the grammar. Each identity walks the catalog with
many page sizes; the pages must add up to exactly what it may pull, in the registry's order,
with a Link on every page but the last and no hidden name anywhere, Link included.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import unquote

import pytest
from support import Upstream, free_port, start_registry
from support.credentials import basic, bearer
from support.gateway import RunningGateway, running_gateway
from support.security import ALL_PASSWORDS, fetch_token, push_blob, raw_request, security_config

MYTEAM = ["myteam/app", "myteam/app-evil", "myteam/app.x", "myteam/app_y", "myteam/a0",
          *(f"myteam/svc{i:02d}" for i in range(30))]
LIBRARY = ["library/alpine", "library/tools/base", "library/a/b/c",
           *(f"library/img{i:02d}" for i in range(40))]
SECRET = [*(f"secret/s{i:02d}" for i in range(30)), "secret/x/y"]
DROP = ["drop/one", "drop/two"]
# Matched by no rule, or hidden from everyone but admins.
NO_RULE = ["myteam/deep/er", "myteamx/app", "myteam", "library", "drop/x/y", "zzz/a", "aaa/b",
           "a", "a/b", "a-b", "a.c", "a0", "ab", *(f"bulk/r{i:04d}" for i in range(960))]
INVALID = ["Upper/case", "myteam/UP"]  # the registry holds them; the gateway never lists them
ALL_VALID = MYTEAM + LIBRARY + SECRET + DROP + NO_RULE

VISIBLE = {
    None: LIBRARY,
    "bob": LIBRARY,
    "eve": LIBRARY,  # delete-only on secret/**: nothing more
    "alice": MYTEAM + LIBRARY,
    "ci-bot": MYTEAM + LIBRARY,
    "frank": MYTEAM + LIBRARY,
    "sam": SECRET + LIBRARY,
    "pat": DROP + LIBRARY,
    "carol": ALL_VALID,  # admin
}
LINK = re.compile(r'</v2/_catalog\?last=([^&>]+)&n=(\d+)>; rel="next"')


def registry_order(names: list[str]) -> list[str]:
    return sorted(names, key=lambda n: n.replace("/", "\0"))


@pytest.fixture(scope="module")
def catalog_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    upstream = start_registry(tmp_path_factory.mktemp("catalog-registry"), access_log=False)
    upstream.seed(ALL_VALID + INVALID)
    yield upstream
    upstream.close()


@pytest.fixture(scope="module")
def catalog_gateway(catalog_upstream: Upstream, tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[RunningGateway]:
    directory = tmp_path_factory.mktemp("catalog-gateway")
    port = free_port()
    config = security_config(catalog_upstream.url, port, directory / "token.pem")
    config["token"].pop("key_file")
    with running_gateway(config, directory, port) as gateway:
        yield gateway


def credentials(user: str | None) -> dict[str, str]:
    return basic(user, ALL_PASSWORDS[user]) if user else {}


async def walk(gateway: RunningGateway, headers: dict[str, str], n: int | None
               ) -> list[list[str]]:
    pages: list[list[str]] = []
    target = "/v2/_catalog" + (f"?n={n}" if n is not None else "")
    while True:
        answer = await raw_request(gateway.port, "GET", target, headers)
        assert answer.status == 200, answer
        body = answer.json()
        assert set(body) == {"repositories"}
        pages.append(body["repositories"])
        link = answer.header("Link")
        if link is None:
            return pages
        match = LINK.fullmatch(link)
        assert match, link
        assert unquote(match.group(1)) == body["repositories"][-1]
        assert int(match.group(2)) == min(n or 100, 1000)
        target = f"/v2/_catalog?last={match.group(1)}&n={match.group(2)}"
        assert len(pages) < 5000


@pytest.mark.parametrize("user", list(VISIBLE))
@pytest.mark.parametrize("n", [1, 2, 3, 7, 35, None, 1000, 5000])
async def test_every_page_size_walks_exactly_the_visible_names(
        catalog_gateway: RunningGateway, user: str | None, n: int | None) -> None:
    pages = await walk(catalog_gateway, credentials(user), n)
    names = [name for page in pages for name in page]
    assert names == registry_order(VISIBLE[user])  # complete, ordered: no gap, no duplicate
    size = min(n or 100, 1000)
    assert all(len(page) == size for page in pages[:-1])
    assert 0 < len(pages[-1]) <= size or names == []


@pytest.mark.parametrize("user", ["bob", "alice", "sam"])
async def test_bearer_tokens_list_the_same(catalog_gateway: RunningGateway, user: str) -> None:
    token = (await fetch_token(catalog_gateway.port, credentials(user), "registry:catalog:*"))
    pages = await walk(catalog_gateway, bearer(token["token"]), 10)
    assert [name for page in pages for name in page] == registry_order(VISIBLE[user])


async def test_last_may_name_a_hidden_or_missing_repository_alike(
        catalog_gateway: RunningGateway) -> None:
    """A cursor after a hidden name and one after a missing name next to it give the same page."""
    headers = credentials("bob")
    answers = [await raw_request(catalog_gateway.port, "GET", f"/v2/_catalog?n=5&last={last}",
                                 headers)
               for last in ("secret%2Fs05", "secret%2Fs05a", "library%2Fimg07", "library%2Fimg07a")]
    pages = [(a.status, a.body, a.header("Link")) for a in answers]
    assert pages[0] == pages[1] and pages[2] == pages[3]


async def test_no_hidden_name_in_any_body_or_link(catalog_gateway: RunningGateway) -> None:
    hidden = set(ALL_VALID) - set(VISIBLE["alice"])
    for n in (1, 4, 50):
        target = f"/v2/_catalog?n={n}"
        while target:
            answer = await raw_request(catalog_gateway.port, "GET", target, credentials("alice"))
            listed = set(answer.json()["repositories"])
            assert not listed & hidden
            link = answer.header("Link") or ""
            match = LINK.fullmatch(link)
            assert match is None or unquote(match.group(1)) not in hidden
            target = f"/v2/_catalog?last={match.group(1)}&n={n}" if match else ""


@pytest.mark.parametrize(("query", "status", "count"), [
    ("n=0", 200, 0), ("n=-1", 400, None), ("n=abc", 400, None), ("n=1.5", 400, None),
    ("n=" + "9" * 400, 200, 1000), ("n=100000", 200, 1000), ("n=", 200, 100),
])
async def test_n_is_validated_and_clamped(catalog_gateway: RunningGateway, query: str,
                                          status: int, count: int | None) -> None:
    answer = await raw_request(catalog_gateway.port, "GET", f"/v2/_catalog?{query}",
                               credentials("carol"))
    assert answer.status == status, answer
    if status == 400:
        assert answer.json()["errors"][0]["code"] == "PAGINATION_NUMBER_INVALID"
    else:
        assert len(answer.json()["repositories"]) == count
        assert (answer.header("Link") is not None) == bool(count)


async def test_no_link_when_the_last_page_is_exactly_full(catalog_gateway: RunningGateway) -> None:
    visible = registry_order(VISIBLE["pat"])
    answer = await raw_request(catalog_gateway.port, "GET", f"/v2/_catalog?n={len(visible)}",
                               credentials("pat"))
    assert answer.json()["repositories"] == visible and answer.header("Link") is None


async def test_a_repository_pushed_through_the_gateway_is_listed_at_once(
        own_gateway: RunningGateway, registry_upstream: Upstream) -> None:
    registry_upstream.seed(["myteam/old", "library/x"])
    alice = credentials("alice")
    assert await walk(own_gateway, alice, 1000) == [["library/x", "myteam/old"]]
    await push_blob(own_gateway.port, "myteam/fresh", b"fresh layer", alice)
    # The snapshot taken by the first walk is fresh for a while: only the note can list it.
    assert await walk(own_gateway, alice, 1000) == [["library/x", "myteam/fresh", "myteam/old"]]
    assert await walk(own_gateway, credentials("bob"), 1000) == [["library/x"]]


async def test_head_and_other_methods(catalog_gateway: RunningGateway) -> None:
    head = await raw_request(catalog_gateway.port, "HEAD", "/v2/_catalog", credentials("bob"))
    assert head.status == 200 and head.body == b""
    post = await raw_request(catalog_gateway.port, "POST", "/v2/_catalog", credentials("carol"))
    assert post.status == 405
