"""The catalog, filtered to what the caller may pull, with paging computed over the filtered list.

Names are ordered as the registry orders them (a path order: '/' sorts before every other
character), so a `last` cursor means the same to us as to the upstream. Two sources of names:

- a shared snapshot of the whole upstream listing, refreshed in the background while a slightly
  stale copy keeps serving (distribution 2.8 walks its whole storage tree for every catalog
  request, so one walk per refresh instead of one per page);
- when there is no usable snapshot, a walk of only the name ranges that can hold a visible name:
  the literal prefixes of the rules that may grant the caller pull, entered with `last=`.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from gateway.policy.names import catalog_key, valid_name
from gateway.upstream.client import UpstreamClient, UpstreamError

log = logging.getLogger("registry_gateway.catalog")

UPSTREAM_PAGE = 1000  # distribution's default catalog.maxentries
BULK_PAGE = 100_000  # one walk for the snapshot where the registry's maxentries allows it
MAX_PAGE = 1000
DEFAULT_PAGE = 100
# A snapshot is refreshed once older than FRESH_SECONDS, and served until STALE_SECONDS; both
# stretch with the time a walk takes, so a slow registry spends at most ~1/4 of its time on them.
FRESH_SECONDS = 15.0
STALE_SECONDS = 120.0
RETRY_SECONDS = 5.0  # after a failed refresh
MAX_SNAPSHOT_NAMES = 500_000

Visible = Callable[[str], Awaitable[bool]]
Fetch = Callable[[int, str], Awaitable[list[str]]]  # (n, last) -> names
Read = Callable[[str], Awaitable[tuple[list[str], int]]]  # last -> (names, n asked)


def start_after(prefix: str) -> str:
    """An upstream `last` cursor just before the first name that starts with `prefix`.

    No valid name lies between the cursor and `prefix`: the last character is replaced by its
    predecessor (never '/', which the registry compares as NUL) followed by '~', which sorts
    after every character a name may contain.
    """
    if not prefix:
        return ""
    head, tail = prefix[:-1], prefix[-1]
    if tail == "/":
        return head
    return head + ("." if tail == "0" else chr(ord(tail) - 1)) + "~"


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
    if not raw.isascii() or not raw.isdigit():
        return None
    # Bounded before int(): a 5,000-digit n is just "a lot", not a conversion error.
    return MAX_PAGE if len(raw) > 6 else min(int(raw), MAX_PAGE)


@dataclass(frozen=True, slots=True)
class Listing:
    """Every valid upstream name, in the registry's order, as of `taken_at` (monotonic)."""

    names: tuple[str, ...]
    keys: tuple[str, ...]
    taken_at: float

    @classmethod
    def of(cls, names: Iterable[str], taken_at: float) -> Listing:
        ordered = sorted({n for n in names if valid_name(n)}, key=catalog_key)
        return cls(tuple(ordered), tuple(catalog_key(n) for n in ordered), taken_at)

    def __contains__(self, name: str) -> bool:
        key = catalog_key(name)
        at = bisect.bisect_left(self.keys, key)
        return at < len(self.keys) and self.keys[at] == key

    def with_names(self, names: Iterable[str]) -> Listing:
        added = [n for n in names if n not in self]
        return Listing.of([*self.names, *added], self.taken_at) if added else self

    def candidates(self, last: str, prefixes: Sequence[str] | None) -> Iterator[str]:
        after = bisect.bisect_right(self.keys, catalog_key(last)) if last else 0
        for prefix in ("",) if prefixes is None else prefixes:
            key = catalog_key(prefix)
            for i in range(max(bisect.bisect_left(self.keys, key), after), len(self.keys)):
                if not self.keys[i].startswith(key):
                    break
                yield self.names[i]


async def walk_ranges(read: Read, last: str, prefixes: Sequence[str] | None) -> AsyncIterator[str]:
    """Names after `last` in the given ranges, read from the upstream range by range."""
    last_key = catalog_key(last)
    for prefix in ("",) if prefixes is None else prefixes:
        key = catalog_key(prefix)
        cursor = start_after(prefix)
        if last and last_key > catalog_key(cursor):
            cursor = last
        while True:
            names, asked = await read(cursor)
            beyond = False
            for name in names:
                if catalog_key(name).startswith(key):
                    if valid_name(name):
                        yield name
                elif catalog_key(name) > key:
                    beyond = True
                    break
            if beyond:
                break  # the next range starts at its own cursor
            if len(names) < asked:
                return  # the registry has nothing after this page
            cursor = names[-1]


async def _iterate(names: Iterable[str]) -> AsyncIterator[str]:
    for name in names:
        yield name


class CatalogLister:
    """Pages of visible names from a shared upstream snapshot, or from range walks."""

    def __init__(self, upstream: UpstreamClient | None, fetch: Fetch | None = None,
                 walk_page: int = UPSTREAM_PAGE) -> None:
        self._upstream = upstream
        self._fetch = fetch or self._upstream_page
        # Small pages for range walks (the registry stops walking once it has n), one large
        # page for the snapshot; each shrinks for good if the registry's maxentries is lower.
        self._sizes = {"walk": walk_page, "bulk": BULK_PAGE}
        self._listing: Listing | None = None
        self._noted: dict[str, float] = {}
        self._refresh: asyncio.Task[None] | None = None
        self._walk_seconds = 0.0
        self._not_before = 0.0

    async def _upstream_page(self, n: int, last: str) -> list[str]:
        assert self._upstream is not None
        query = f"?n={n}" + (f"&last={quote(last, safe='')}" if last else "")
        status, body, _ = await self._upstream.get_json("/v2/_catalog" + query)
        if status == 400 and n > 1:
            raise PageTooLarge
        if status != 200 or not isinstance(body, dict):
            raise UpstreamError("catalog", 502)
        names = body.get("repositories") or []
        return [n for n in names if isinstance(n, str)]

    async def page(self, n: int, last: str, visible: Visible,
                   prefixes: Sequence[str] | None = None) -> CatalogPage:
        """Up to `n` visible names after `last`; `prefixes` bound where they can be."""
        if n <= 0 or prefixes == ():
            return CatalogPage([], more=False)
        refresh = self._refresh
        listing = self._usable_listing()
        started = self._refresh if self._refresh is not refresh else None
        names = (_iterate(listing.candidates(last, prefixes)) if listing is not None
                 else walk_ranges(self._walk_page, last, prefixes))
        found: list[str] = []
        try:
            async for name in names:
                if await visible(name):
                    found.append(name)
                    if len(found) > n:
                        break
        except asyncio.CancelledError:
            # The client left: the refresh it started goes too, so no upstream exchange outlives
            # it; the next request starts another. One started by a request that was answered
            # stays, since a snapshot is worth finishing (one per gateway at most).
            if started is not None:
                started.cancel()
            raise
        return CatalogPage(found[:n], more=len(found) > n)

    async def _read(self, which: str, last: str) -> tuple[list[str], int]:
        while True:
            n = self._sizes[which]
            try:
                return await self._fetch(n, last), n
            except PageTooLarge:
                if n <= 1:
                    raise UpstreamError("catalog", 502) from None
                self._sizes[which] = max(1, n // 10)

    async def _walk_page(self, last: str) -> tuple[list[str], int]:
        return await self._read("walk", last)

    def note(self, name: str) -> None:
        """A repository this gateway just wrote to: listed at once, not after the next refresh."""
        refreshing = self._refresh is not None and not self._refresh.done()
        if self._listing is None and not refreshing:
            return  # range walks read the registry itself
        self._noted[name] = time.monotonic()
        if self._listing is not None:
            self._listing = self._listing.with_names([name])

    def _usable_listing(self) -> Listing | None:
        listing, now = self._listing, time.monotonic()
        fresh_for = max(FRESH_SECONDS, 4 * self._walk_seconds)
        age = now - listing.taken_at if listing is not None else None
        if (age is None or age > fresh_for) and now >= self._not_before:
            self._start_refresh()
        if age is None or age > max(STALE_SECONDS, fresh_for + 2 * self._walk_seconds):
            return None
        return listing

    def _start_refresh(self) -> None:
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.get_running_loop().create_task(self._rebuild())

    async def _rebuild(self) -> None:
        started = time.monotonic()
        try:
            names = await self._read_all()
        except Exception as exc:  # a background task: log it, the range walks still serve
            self._not_before = time.monotonic() + RETRY_SECONDS
            log.warning("catalog snapshot not refreshed: %r", exc)
            return
        self._walk_seconds = time.monotonic() - started
        if names is None:
            self._listing = None
            self._not_before = time.monotonic() + STALE_SECONDS
            return
        # Names written while the walk ran may be missing from it: keep them.
        self._noted = {n: t for n, t in self._noted.items() if t >= started}
        self._listing = Listing.of([*names, *self._noted], started)

    async def _read_all(self) -> list[str] | None:
        names: list[str] = []
        cursor = ""
        while True:
            page, asked = await self._read("bulk", cursor)
            names.extend(page)
            if len(names) > MAX_SNAPSHOT_NAMES:
                log.warning("catalog over %d names: serving it by range walks", MAX_SNAPSHOT_NAMES)
                return None
            if len(page) < asked:
                return names
            cursor = page[-1]

    async def close(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresh


class PageTooLarge(Exception):
    """The registry refused the page size: its catalog.maxentries is lower."""
