"""The catalog a caller may see: one filter for the API's /v2/_catalog and the web pages."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from gateway.access.request import Caller
from gateway.http.services import Services
from gateway.policy.visibility import pull_prefixes
from gateway.runtime.snapshot import Snapshot
from gateway.upstream.catalog import CatalogPage


async def visible_page(services: Services, snapshot: Snapshot, caller: Caller, n: int,
                       last: str, keep: Callable[[str], bool] | None = None) -> CatalogPage:
    """Up to `n` names after `last` that `caller` may pull.

    Decided uncached and uncounted: a page may look at thousands of names, and filling the
    shared decision cache with them would evict what requests need. `keep` narrows further
    (a search), checked first since most names of a large registry fail it.
    """
    async def visible(name: str) -> bool:
        if keep is not None and not keep(name):
            return False
        verdicts = await services.access.decide(snapshot, caller.subject, name, ("pull",),
                                                cached=False, count=False)
        return verdicts.allowed

    prefixes = pull_prefixes(snapshot.policy, caller.subject, datetime.now(UTC))
    return await services.catalog.page(n, last, visible, prefixes)
