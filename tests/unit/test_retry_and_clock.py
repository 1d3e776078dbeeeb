"""Backoff with jitter, retry budgets, and Amazon's clock from Date headers."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from syncd.amazon.clock import AmazonClock
from syncd.amazon.retry import RetryPolicy
from tests.unit.fakes import FakeTime


def test_backoff_grows_and_is_jittered() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=60.0, rng=random.Random(1))

    delays = [policy.delay(attempt) for attempt in range(1, 6)]

    for attempt, delay in enumerate(delays, start=1):
        step = 2 ** (attempt - 1)
        assert step / 2 <= delay <= step
    assert delays == sorted(delays)
    assert len({round(d / 2**i, 6) for i, d in enumerate(delays)}) > 1  # not a fixed factor


def test_backoff_is_capped_and_honours_retry_after() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=10.0, rng=random.Random(1))

    assert policy.delay(20) <= 10.0
    assert policy.delay(1, retry_after=7.0) == 7.0
    assert policy.delay(1, retry_after=1000.0) == 10.0


def test_budget_stops_on_attempts_and_on_time() -> None:
    policy = RetryPolicy(max_attempts=3, max_seconds=10.0)

    assert policy.allows(1, elapsed=0.0, next_delay=1.0)
    assert not policy.allows(3, elapsed=0.0, next_delay=1.0)
    assert not policy.allows(1, elapsed=9.5, next_delay=1.0)


def test_clock_measures_skew_from_date_header() -> None:
    time = FakeTime(datetime(2026, 5, 10, 12, 0, 0, tzinfo=UTC))
    clock = AmazonClock(now=time.now)

    clock.observe_date_header("Sun, 10 May 2026 11:55:00 GMT")

    assert clock.has_measurement
    assert clock.skew_seconds == pytest.approx(-300.0)
    assert clock.now() == time.now() - timedelta(seconds=300)


def test_clock_follows_latest_date_header() -> None:
    time = FakeTime()
    clock = AmazonClock(now=time.now)

    clock.observe_date_header(None)
    clock.observe_date_header("not a date")
    assert not clock.has_measurement

    clock.observe_date_header("Sun, 10 May 2026 12:00:10 GMT")
    assert clock.skew_seconds == pytest.approx(10.0)
    clock.observe_date_header("Sun, 10 May 2026 11:55:00 GMT")
    assert clock.skew_seconds == pytest.approx(-300.0)


def test_before_bound_subtracts_rule_and_margin() -> None:
    time = FakeTime(datetime(2026, 5, 10, 12, 0, 0, tzinfo=UTC))
    clock = AmazonClock(now=time.now)
    clock.observe_date_header("Sun, 10 May 2026 11:50:00 GMT")  # Amazon is ten minutes behind

    bound = clock.latest_before_bound(timedelta(seconds=60))

    assert bound == datetime(2026, 5, 10, 11, 47, 0, tzinfo=UTC)


def test_provisional_sample_serves_until_sp_api_answers() -> None:
    time = FakeTime()
    clock = AmazonClock(now=time.now)

    clock.observe_date_header("Sun, 10 May 2026 12:10:00 GMT", provisional=True)
    assert clock.skew_seconds == pytest.approx(600.0)
    clock.observe_date_header("Sun, 10 May 2026 12:00:05 GMT")
    clock.observe_date_header("Sun, 10 May 2026 12:10:00 GMT", provisional=True)

    assert clock.skew_seconds == pytest.approx(5.0)
