from __future__ import annotations

from propdev.http.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_client_gets_a_burst_of_twice_the_rate_then_waits() -> None:
    clock = Clock()
    limiter = RateLimiter(10, clock=clock)
    assert [limiter.take("a") for _ in range(20)] == [0.0] * 20
    wait = limiter.take("a")
    assert 0.09 < wait <= 0.1
    assert limiter.take("b") == 0.0  # another client is not affected
    clock.now += 0.1
    assert limiter.take("a") == 0.0


def test_zero_rate_turns_limiting_off() -> None:
    assert not RateLimiter(0).enabled


def test_the_number_of_tracked_clients_is_bounded() -> None:
    limiter = RateLimiter(1, max_clients=3, clock=Clock())
    for n in range(10):
        limiter.take(f"c{n}")
    assert len(limiter._buckets) == 3
