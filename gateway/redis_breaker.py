"""A circuit breaker for Redis: after a failure, skip it for a short, growing backoff."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum


class BreakerState(Enum):
    CLOSED = "closed"  # Redis is used
    OPEN = "open"  # Redis is skipped until the backoff ends
    PROBING = "probing"  # one call is trying Redis again; the others still skip it


class CircuitBreaker:
    """Closed -> open on a failure; after the backoff one call probes; its success closes again.

    A down Redis then costs one failed call per backoff (per process) instead of a timeout on
    every request. Failures of calls that were already in flight when it opened count once.
    """

    def __init__(self, base: float = 0.25, cap: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._base = base
        self._cap = cap
        self._clock = clock
        self.state = BreakerState.CLOSED
        self._backoff = 0.0
        self._retry_at = 0.0

    def allow(self) -> bool:
        """May this call use Redis? After the backoff, exactly one call gets to probe."""
        if self.state is BreakerState.CLOSED:
            return True
        now = self._clock()
        if now < self._retry_at:
            return False
        # A probe that never reported (its request was cancelled) is replaced after a backoff.
        self.state = BreakerState.PROBING
        self._retry_at = now + self._backoff
        return True

    def success(self) -> bool:
        """Redis answered; True if that closed an open breaker."""
        reopened = self.state is not BreakerState.CLOSED
        self.state = BreakerState.CLOSED
        self._backoff = 0.0
        return reopened

    def failure(self) -> bool:
        """Redis failed; True if that opened a closed breaker."""
        if self.state is BreakerState.OPEN:
            return False  # an in-flight call from before; already counted
        opened = self.state is BreakerState.CLOSED
        self._backoff = self._base if opened else min(self._backoff * 2, self._cap)
        self._retry_at = self._clock() + self._backoff
        self.state = BreakerState.OPEN
        return opened

    @property
    def backoff(self) -> float:
        return self._backoff
