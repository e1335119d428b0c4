"""The catalog, filtered to what the caller may pull, with paging computed over the filtered list."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

from gateway.proxy import Upstream, UpstreamError

UPSTREAM_PAGE = 1000
MAX_PAGE = 1000
DEFAULT_PAGE = 100

Visible = Callable[[str], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class CatalogPage:
    repositories: list[str]
    more: bool

    def link(self, n: int) -> str | None:
        if not self.more or not self.repositories:
            return None
        last = quote(self.repositories[-1], safe="")
        return f'</v2/_catalog?last={last}&n={n}>; rel="next"'


def page_size(raw: str | None) -> int | None:
    """`n` clamped to MAX_PAGE; None when it is not a number at all."""
    if raw is None or raw == "":
        return DEFAULT_PAGE
    if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
        return None
    return min(int(raw), MAX_PAGE)


class CatalogLister:
    """Walks the upstream catalog in large pages and keeps the names the caller may pull."""

    def __init__(self, upstream: Upstream) -> None:
        self._upstream = upstream

    async def _upstream_page(self, last: str) -> list[str]:
        query = f"?n={UPSTREAM_PAGE}" + (f"&last={quote(last, safe='')}" if last else "")
        status, body, _ = await self._upstream.get_json("/v2/_catalog" + query)
        if status != 200 or not isinstance(body, dict):
            raise UpstreamError("catalog", 502)
        names = body.get("repositories") or []
        return [n for n in names if isinstance(n, str)]

    async def page(self, n: int, last: str, visible: Visible) -> CatalogPage:
        found: list[str] = []
        cursor = last
        while len(found) <= n:
            names = await self._upstream_page(cursor)
            for name in names:
                if name > last and await visible(name):
                    found.append(name)
                    if len(found) > n:
                        break
            if len(names) < UPSTREAM_PAGE:
                break
            cursor = names[-1]
        return CatalogPage(found[:n], more=len(found) > n)
