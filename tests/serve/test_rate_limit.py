"""The token bucket of each integration (`app.serve.limits.RateLimiter`), on a clock of
the test's own."""

from __future__ import annotations

import pytest

from app.serve.limits import RateLimiter


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ticks() -> Ticks:
    return Ticks()


def test_a_full_bucket_passes_its_limit_then_says_how_long_to_wait(ticks: Ticks) -> None:
    limiter = RateLimiter(ticks)
    assert [limiter.take("pd", 2) for _ in range(2)] == [0.0, 0.0]
    assert limiter.take("pd", 2) == pytest.approx(30.0)  # two a minute: one every 30 s
    ticks.now += 30
    assert limiter.take("pd", 2) == 0.0


def test_a_group_larger_than_the_limit_passes_when_the_bucket_is_full_and_empties_it(
    ticks: Ticks,
) -> None:
    """An Alertmanager group of 121 alerts under a limit of 120 a minute was refused with
    Retry-After: 1 for ever: the bucket never holds 121. Nor does a group of 3,000 hold
    back the alerts after it until it is paid for (25 minutes)."""
    limiter = RateLimiter(ticks)
    assert limiter.take("prod", 120, 10) == 0.0
    assert limiter.take("prod", 120, 3000) == pytest.approx(5.0)  # until the bucket is full
    ticks.now += 5
    assert limiter.take("prod", 120, 3000) == 0.0
    assert limiter.take("prod", 120) == pytest.approx(0.5)  # empty: one token, 2 a second
    ticks.now += 0.5
    assert limiter.take("prod", 120) == 0.0


def test_integrations_have_buckets_of_their_own(ticks: Ticks) -> None:
    limiter = RateLimiter(ticks)
    assert limiter.take("a", 1) == 0.0
    assert limiter.take("a", 1) > 0
    assert limiter.take("b", 1) == 0.0
