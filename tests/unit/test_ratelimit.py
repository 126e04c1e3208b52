"""The per-agent token bucket: a burst, then the sustained rate; agents do not share a bucket."""

from __future__ import annotations

import pytest

from relayer.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_per_s=2, burst=3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.5)
    clock.now = 0.5
    assert limiter.take("a") == 0.0
    assert limiter.take("a") == pytest.approx(0.5)


def test_agents_have_their_own_buckets() -> None:
    limiter = RateLimiter(rate_per_s=1, burst=1, clock=Clock())
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0
    assert limiter.take("b") == 0.0


def test_refill_is_capped_at_the_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_per_s=10, burst=2, clock=clock)
    clock.now = 3600.0
    assert [limiter.take("a") == 0.0 for _ in range(3)] == [True, True, False]


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0)])
def test_rejects_nonsense(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate, burst)


def test_buckets_are_bounded_least_recently_used_first() -> None:
    """10,000 distinct keys keep at most `max_keys` buckets; the most recently used one survives."""
    clock = Clock()
    limiter = RateLimiter(rate_per_s=1, burst=1, clock=clock, max_keys=1_000)
    assert limiter.take("hot") == 0.0
    for i in range(10_000):
        limiter.take(f"cold-{i}")
        if i % 100 == 0:
            assert limiter.take("hot") > 0  # still remembered: used recently, so never evicted
    assert len(limiter) == 1_000
    assert limiter.take("cold-0") == 0.0  # evicted long ago: comes back full
