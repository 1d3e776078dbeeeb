"""Token buckets: burst, sustained rate, learning from the header, draining after a 429."""

from __future__ import annotations

import threading

import pytest

from syncd.amazon.throttle import (
    DEFAULT_PLANS,
    FALLBACK_PLAN,
    LATENCY_MARGIN,
    BucketLevel,
    BucketRegistry,
    TokenBucket,
    UsagePlan,
    parse_rate_limit,
)
from tests.unit.fakes import FakeTime


def test_burst_then_sustained_rate() -> None:
    time = FakeTime()
    bucket = TokenBucket(UsagePlan(0.5, 3), clock=time.monotonic, sleep=time.sleep)

    waits = [bucket.acquire() for _ in range(5)]

    assert waits[:2] == [0.0, 0.0]
    # The burst's last token waits for the latency margin, then one token every 2 s.
    assert waits[2] == pytest.approx(LATENCY_MARGIN)
    assert waits[3] == pytest.approx(2.0)
    assert waits[4] == pytest.approx(2.0)


def test_search_orders_plan_after_burst() -> None:
    time = FakeTime()
    bucket = TokenBucket(DEFAULT_PLANS["searchOrders"], clock=time.monotonic, sleep=time.sleep)

    for _ in range(19):
        assert bucket.acquire() == 0.0
    last_of_burst = bucket.acquire()
    wait = bucket.acquire()

    assert last_of_burst == pytest.approx(LATENCY_MARGIN)
    assert wait == pytest.approx(1 / 0.0056)


def test_learned_rate_paces_the_next_call() -> None:
    time = FakeTime()
    registry = BucketRegistry(
        {"getOrder": UsagePlan(0.5, 1)}, clock=time.monotonic, sleep=time.sleep
    )
    bucket = registry.bucket("acme", "eu", "getOrder")
    bucket.acquire()

    registry.observe_rate_limit("acme", "eu", "getOrder", "0.0167")

    assert bucket.rate == pytest.approx(0.0167)
    assert bucket.acquire() >= 59.0


@pytest.mark.parametrize(
    ("header", "rate"),
    [
        ("0.0167", 0.0167),
        (" 2 ", 2.0),
        (None, None),
        ("", None),
        ("abc", None),
        ("0", None),
        ("-1", None),
        ("inf", None),
        ("nan", None),
        ("1e-9", None),
        ("5000", None),
    ],
)
def test_rate_limit_header_parsing(header: str | None, rate: float | None) -> None:
    assert parse_rate_limit(header) == rate


def test_missing_header_keeps_the_plan() -> None:
    registry = BucketRegistry()
    bucket = registry.bucket("acme", "na", "getOrder")

    registry.observe_rate_limit("acme", "na", "getOrder", None)

    assert bucket.rate == DEFAULT_PLANS["getOrder"].rate


def test_drain_after_throttling_waits_a_full_interval() -> None:
    time = FakeTime()
    bucket = TokenBucket(UsagePlan(2.0, 10), clock=time.monotonic, sleep=time.sleep)
    bucket.acquire()

    bucket.drain()

    assert bucket.acquire() == pytest.approx(0.5 + LATENCY_MARGIN)


def test_buckets_are_per_account_region_and_operation() -> None:
    registry = BucketRegistry()

    first = registry.bucket("acme", "eu", "searchOrders")

    assert registry.bucket("acme", "eu", "searchOrders") is first
    assert registry.bucket("acme", "na", "searchOrders") is not first
    assert registry.bucket("other", "eu", "searchOrders") is not first
    assert registry.bucket("acme", "eu", "getOrder") is not first
    assert registry.bucket("acme", "eu", "somethingNew").rate == FALLBACK_PLAN.rate


def test_concurrent_callers_queue_up() -> None:
    time = FakeTime()
    bucket = TokenBucket(UsagePlan(1.0, 2), clock=time.monotonic, sleep=lambda _s: None)
    waits: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        wait = bucket.reserve()
        with lock:
            waits.append(wait)

    threads = [threading.Thread(target=take) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # One token per second after the burst, each the latency margin later.
    expected = [0.0] + [k + LATENCY_MARGIN for k in range(9)]
    assert sorted(waits) == pytest.approx(expected)


def test_set_stop_event_takes_no_token() -> None:
    time = FakeTime()
    bucket = TokenBucket(UsagePlan(1.0, 2), clock=time.monotonic, sleep=time.sleep)
    stop = threading.Event()
    stop.set()

    assert bucket.acquire(stop) is None
    assert bucket.acquire() == 0.0
    # Both burst tokens were still there: the second waits only the latency margin.
    assert bucket.acquire() == pytest.approx(LATENCY_MARGIN)


def test_stop_during_wait_gives_the_token_back() -> None:
    bucket = TokenBucket(UsagePlan(0.01, 1))
    bucket.acquire()
    stop = threading.Event()
    threading.Timer(0.05, stop.set).start()

    assert bucket.acquire(stop) is None
    assert bucket.reserve() == pytest.approx(100.0, rel=0.01)  # one token queued, not two


def test_deadline_refuses_a_late_token() -> None:
    time = FakeTime()
    bucket = TokenBucket(UsagePlan(0.5, 1), clock=time.monotonic, sleep=time.sleep)
    bucket.acquire()

    assert bucket.acquire(deadline=time.monotonic() + 1.0) is None
    assert bucket.acquire(deadline=time.monotonic() + 2.0) == pytest.approx(2.0)


def test_refund_restores_a_token() -> None:
    time = FakeTime()
    bucket = TokenBucket(UsagePlan(0.5, 1), clock=time.monotonic, sleep=time.sleep)
    bucket.acquire()

    bucket.refund()

    assert bucket.acquire() == 0.0


def _registry(time: FakeTime, plan: UsagePlan) -> BucketRegistry:
    return BucketRegistry({"searchOrders": plan}, clock=time.monotonic, sleep=time.sleep)


def test_levels_report_each_bucket_of_the_account() -> None:
    time = FakeTime()
    registry = _registry(time, UsagePlan(0.5, 10))
    bucket = registry.bucket("acme", "eu", "searchOrders")
    for _ in range(7):
        bucket.acquire()
    registry.bucket("other", "eu", "searchOrders").acquire()

    levels = registry.levels("acme", "eu")

    assert levels == {"searchOrders": BucketLevel(tokens=pytest.approx(3.0), rate=0.5)}


def test_restore_refills_for_saved_age() -> None:
    # Another process left Amazon's bucket empty 4 s ago; at 0.5/s two tokens are back.
    time = FakeTime()
    registry = _registry(time, UsagePlan(0.5, 10))

    registry.restore("acme", "eu", {"searchOrders": BucketLevel(0.0, 0.5)}, age_seconds=4.0)
    bucket = registry.bucket("acme", "eu", "searchOrders")
    waits = [bucket.acquire() for _ in range(3)]

    assert waits[0] == 0.0
    assert waits[1] == pytest.approx(LATENCY_MARGIN)
    assert waits[2] == pytest.approx(2.0)


def test_restore_keeps_lower_level() -> None:
    time = FakeTime()
    registry = _registry(time, UsagePlan(0.5, 10))
    bucket = registry.bucket("acme", "eu", "searchOrders")
    for _ in range(9):
        bucket.acquire()

    registry.restore("acme", "eu", {"searchOrders": BucketLevel(10.0, 0.5)}, age_seconds=0.0)

    assert registry.levels("acme", "eu")["searchOrders"].tokens == pytest.approx(1.0)


def test_restore_caps_burst_adopts_rate() -> None:
    # A fresh process would fall back to the default plan and wait minutes for a token that
    # the seller's higher plan, reported by Amazon, has long refilled.
    time = FakeTime()
    registry = _registry(time, UsagePlan(0.5, 10))

    registry.restore("acme", "eu", {"searchOrders": BucketLevel(2.0, 2.0)}, age_seconds=3600.0)

    assert registry.levels("acme", "eu")["searchOrders"] == BucketLevel(tokens=10.0, rate=2.0)


def test_restore_refills_at_lower_rate() -> None:
    time = FakeTime()
    registry = _registry(time, UsagePlan(0.5, 10))

    registry.restore("acme", "eu", {"searchOrders": BucketLevel(0.0, 0.25)}, age_seconds=4.0)

    assert registry.levels("acme", "eu")["searchOrders"] == BucketLevel(tokens=1.0, rate=0.25)


def test_restore_floors_negative_tokens() -> None:
    # A huge negative level would otherwise stall the account for years.
    time = FakeTime()
    registry = _registry(time, UsagePlan(0.5, 10))

    registry.restore("acme", "eu", {"searchOrders": BucketLevel(-1e12, 0.5)}, age_seconds=2.0)

    assert registry.levels("acme", "eu")["searchOrders"].tokens == pytest.approx(1.0)


@pytest.mark.parametrize("rate", [0.0, -1.0, float("inf"), float("nan"), 1e9])
def test_restore_ignores_a_saved_rate_out_of_bounds(rate: float) -> None:
    time = FakeTime()
    registry = _registry(time, UsagePlan(0.5, 10))

    registry.restore("acme", "eu", {"searchOrders": BucketLevel(0.0, rate)}, age_seconds=1.0)

    assert registry.levels("acme", "eu") == {}
