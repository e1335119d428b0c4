"""TTLMap, the one bounded expiring map under every in-process cache and store."""

from __future__ import annotations

import time

from gateway.state.ttlmap import TTLMap


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_an_entry_lives_for_its_ttl_and_not_a_moment_longer() -> None:
    clock = Clock()
    entries: TTLMap[str, int] = TTLMap(10, clock)
    entries.put("a", 1, ttl=5)
    clock.now += 4.999
    assert entries.get("a") == 1 and "a" in entries
    clock.now += 0.001  # the deadline itself is past
    assert entries.get("a") is None and "a" not in entries
    assert len(entries) == 0  # an expired entry read once is gone, not just hidden


def test_each_entry_has_its_own_ttl_and_a_put_renews_it() -> None:
    clock = Clock()
    entries: TTLMap[str, str] = TTLMap(10, clock)
    entries.put("short", "s", ttl=1)
    entries.put("long", "l", ttl=10)
    clock.now += 2
    assert entries.get("short") is None and entries.get("long") == "l"
    entries.put("long", "l2", ttl=1)  # the later put replaces value and deadline
    clock.now += 1
    assert entries.get("long") is None


def test_the_least_recently_used_entry_goes_first_past_the_bound() -> None:
    entries: TTLMap[int, int] = TTLMap(3, Clock())
    for i in range(3):
        entries.put(i, i, ttl=60)
    assert entries.get(0) == 0  # 0 is now the most recent; 1 the least
    entries.put(3, 3, ttl=60)
    assert len(entries) == 3
    assert entries.get(1) is None
    assert [entries.get(i) for i in (0, 2, 3)] == [0, 2, 3]


def test_a_reloaded_bound_applies_from_the_next_put() -> None:
    entries: TTLMap[int, int] = TTLMap(5, Clock())
    for i in range(5):
        entries.put(i, i, ttl=60)
    entries.put(5, 5, ttl=60, max_entries=2)  # shrunk: the oldest go at once
    assert entries.max_entries == 2 and len(entries) == 2
    assert entries.get(4) == 4 and entries.get(5) == 5
    for i in range(6, 10):
        entries.put(i, i, ttl=60, max_entries=4)  # grown again
    assert len(entries) == 4
    entries.put(10, 10, ttl=60)  # no bound given: the last one holds
    assert len(entries) == 4


def test_put_until_takes_a_deadline_on_the_map_s_wall_clock() -> None:
    """A session's expiry comes from outside as an epoch time: the map reads time.time()."""
    entries: TTLMap[str, str] = TTLMap(10, time.time)
    entries.put_until("session", "alice", time.time() + 60)
    entries.put_until("expired", "bob", time.time() - 1)
    assert entries.get("session") == "alice"
    assert entries.get("expired") is None
    assert entries.now() <= time.time()
    # `now` may be given, e.g. read once for several lookups.
    assert entries.get("session", now=time.time() + 61) is None


def test_pop_and_clear() -> None:
    entries: TTLMap[str, int] = TTLMap(10, Clock())
    entries.put("a", 1, ttl=60)
    entries.put("b", 2, ttl=60)
    assert entries.pop("a") == 1 and entries.pop("a") is None
    entries.clear()
    assert len(entries) == 0 and entries.get("b") is None
