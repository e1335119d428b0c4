"""The circuit breaker on a fake clock: skip after a failure, one probe per backoff, close on success."""

from __future__ import annotations

from gateway.state.redis import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_closed_until_a_failure_then_skips_for_the_backoff() -> None:
    clock = Clock()
    breaker = CircuitBreaker(base=1.0, cap=4.0, clock=clock)
    assert breaker.allow() and breaker.allow()
    assert breaker.failure() is True  # it opened
    assert breaker.state is BreakerState.OPEN
    clock.now += 0.99
    assert not breaker.allow()


def test_one_probe_after_the_backoff_and_its_success_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker(base=1.0, cap=4.0, clock=clock)
    breaker.failure()
    clock.now += 1.0
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # everyone else still skips while it is out
    assert breaker.success() is True
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()
    assert breaker.success() is False  # already closed


def test_failed_probes_double_the_backoff_up_to_the_cap() -> None:
    clock = Clock()
    breaker = CircuitBreaker(base=1.0, cap=4.0, clock=clock)
    breaker.failure()
    backoffs = []
    for _ in range(4):
        clock.now += breaker.backoff
        assert breaker.allow()
        assert breaker.failure() is False  # it was not closed
        backoffs.append(breaker.backoff)
    assert backoffs == [2.0, 4.0, 4.0, 4.0]
    breaker.success()
    breaker.failure()
    assert breaker.backoff == 1.0  # a new outage starts short again


def test_calls_in_flight_when_it_opened_count_once() -> None:
    clock = Clock()
    breaker = CircuitBreaker(base=1.0, cap=4.0, clock=clock)
    assert breaker.failure() is True
    for _ in range(10):
        assert breaker.failure() is False
    assert breaker.backoff == 1.0


def test_a_lost_probe_is_replaced_after_a_backoff() -> None:
    clock = Clock()
    breaker = CircuitBreaker(base=1.0, cap=4.0, clock=clock)
    breaker.failure()
    clock.now += 1.0
    assert breaker.allow()  # this probe's request is cancelled and never reports
    clock.now += 0.5
    assert not breaker.allow()
    clock.now += 0.5
    assert breaker.allow()
