"""Where state lives: decision cache, lockout counters and upload bindings, in-process or Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gateway.cache import DecisionCache, MemoryDecisionCache
from gateway.config import Settings
from gateway.metrics import Metrics
from gateway.snapshot import Snapshot
from gateway.stores import LockoutStore, MemoryLockoutStore, MemoryUploadBindings, UploadBindings


class SharedState:
    """The stores the request path uses; Redis-backed when `cache.redis_url` is set."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self._metrics = metrics
        self.memory_decisions = MemoryDecisionCache(settings.cache.ttl, settings.cache.max_entries)
        self.memory_lockout = MemoryLockoutStore(settings.auth.lockout)
        self.memory_uploads = MemoryUploadBindings()
        self.decisions: DecisionCache = self.memory_decisions
        self.lockout: LockoutStore = self.memory_lockout
        self.uploads: UploadBindings = self.memory_uploads

    def apply(self, snapshot: Snapshot) -> None:
        """Settings a reload may change."""
        self.memory_lockout.settings = snapshot.settings.auth.lockout


@asynccontextmanager
async def open_shared_state(shared: SharedState) -> AsyncIterator[SharedState]:
    yield shared
