"""Token buckets with Amazon's default usage plans, refilled by the sandbox clock.

Amazon limits each operation per selling partner and application with a token bucket. A
request takes one token, tokens come back at the plan's rate up to its burst, and a request
that finds the bucket empty gets 429. The sandbox keeps one bucket per (seller, region,
operation). A speed factor multiplies every refill rate so that hours of quota pass in
minutes, and the effective rate is what ``x-amzn-RateLimit-Limit`` reports.

Buckets refill by the sandbox clock, so moving the clock forward also refills them; moving
it backward refills nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

# Reported in x-amzn-RateLimit-Limit when quotas are off, so a client learns it may go fast.
UNLIMITED_RATE_HEADER = "1000.0"


@dataclass(frozen=True)
class UsagePlan:
    """Amazon's default plan for one operation: requests per second and burst size."""

    rate: Decimal  # requests per second
    burst: int


# Default usage plans from Amazon's API references.
USAGE_PLANS: dict[str, UsagePlan] = {
    "searchOrders": UsagePlan(Decimal("0.0056"), 20),
    "getOrder": UsagePlan(Decimal("0.5"), 30),
    "confirmShipment": UsagePlan(Decimal("2"), 10),
    "patchListingsItem": UsagePlan(Decimal("5"), 5),
    "createFeedDocument": UsagePlan(Decimal("0.5"), 15),
    "createFeed": UsagePlan(Decimal("0.0083"), 15),
    "getFeed": UsagePlan(Decimal("2"), 15),
    "createReport": UsagePlan(Decimal("0.0167"), 15),
    "getReports": UsagePlan(Decimal("0.0222"), 10),
    "getReport": UsagePlan(Decimal("2"), 15),
    "getReportDocument": UsagePlan(Decimal("0.0167"), 15),
    "getInventorySummaries": UsagePlan(Decimal("2"), 2),
    "listTransactions": UsagePlan(Decimal("0.5"), 10),
    "getMarketplaceParticipations": UsagePlan(Decimal("0.016"), 15),
}


def effective_rate(plan: UsagePlan, speed: float) -> Decimal:
    """Return the plan's rate multiplied by the speed factor."""
    return plan.rate * Decimal(str(speed))


def format_rate(rate: Decimal) -> str:
    """Format a rate as a plain decimal string, as Amazon writes it (``0.0056``, ``0.5``)."""
    text = format(rate.normalize(), "f")
    return text if text != "0" else "0.0"


def rate_limit_header(operation_id: str, speed: float, quotas: bool) -> str | None:
    """Return the ``x-amzn-RateLimit-Limit`` value for an operation, or None if it has no plan."""
    plan = USAGE_PLANS.get(operation_id)
    if plan is None:
        return None
    if not quotas:
        return UNLIMITED_RATE_HEADER
    return format_rate(effective_rate(plan, speed))


@dataclass
class TokenBucket:
    """One bucket: current tokens and the time they were last counted."""

    tokens: float
    counted_at: datetime


class Throttle:
    """All buckets of one sandbox. Not thread-safe: callers hold the state lock."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[str, str, str], TokenBucket] = {}

    def try_acquire(
        self, seller_id: str, region: str, operation_id: str, now: datetime, speed: float
    ) -> bool:
        """Take one token for a request; return False when the bucket is empty (a 429)."""
        plan = USAGE_PLANS.get(operation_id)
        if plan is None:
            return True
        bucket = self._refilled_bucket((seller_id, region, operation_id), plan, now, speed)
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def tokens_left(
        self, seller_id: str, region: str, operation_id: str, now: datetime, speed: float
    ) -> float:
        """Return the tokens a bucket contains now, without taking one."""
        plan = USAGE_PLANS.get(operation_id)
        if plan is None:
            return float("inf")
        return self._refilled_bucket((seller_id, region, operation_id), plan, now, speed).tokens

    def clear(self) -> None:
        """Forget every bucket, so each starts full again."""
        self._buckets.clear()

    def _refilled_bucket(
        self, key: tuple[str, str, str], plan: UsagePlan, now: datetime, speed: float
    ) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(tokens=float(plan.burst), counted_at=now)
            self._buckets[key] = bucket
            return bucket

        elapsed = max(0.0, (now - bucket.counted_at).total_seconds())
        refill = elapsed * float(effective_rate(plan, speed))
        bucket.tokens = min(float(plan.burst), bucket.tokens + refill)
        # A clock moved backward must not refill twice when it comes forward again.
        bucket.counted_at = max(bucket.counted_at, now)
        return bucket
