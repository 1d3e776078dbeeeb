"""Client-side token buckets that mirror Amazon's usage plans, so requests wait instead of 429.

Amazon meters each operation per selling partner and application with a token bucket: a
sustained rate in requests per second and a burst. syncd keeps one bucket per (account,
region, operation), seeded with Amazon's default plan and corrected whenever a response
carries ``x-amzn-RateLimit-Limit``. A caller takes a token before each request; when the
bucket is empty it sleeps until the next token is due.

Some operations also have a limit for the whole application, summed over all sellers, that
no header reports. ``SYNCD_APPLICATION_BUDGET`` sets one in calls per second for such an
operation. Every call of it then also takes a token from an application-wide bucket, one
per node. Each node's bucket has the budget divided by the number of live nodes as its rate
(:meth:`BucketRegistry.share_application_budget`, called on each node heartbeat).

Amazon's bucket outlives the process. When a process gives an account up, it saves the
levels of the account's buckets (:meth:`BucketRegistry.levels`), and the next process that
takes the account starts from them (:meth:`BucketRegistry.restore`) instead of from a full
burst that Amazon would reject with 429.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from syncd.amazon.clock import monotonic
from syncd.logs import get_logger

log = get_logger(__name__)

# Amazon counts a request when it arrives, one network latency after the client took its
# token. A request slower on the way than the next one would make that one arrive before
# Amazon's bucket has its token. So the client takes a token only while this many seconds
# of refill remain in hand: the rate stays the same, every wait is this much longer, and
# Amazon's bucket keeps that much ahead of the client's.
LATENCY_MARGIN = 0.1  # seconds


@dataclass(frozen=True)
class UsagePlan:
    """A token-bucket plan: ``rate`` requests per second sustained, ``burst`` at once."""

    rate: float  # requests per second
    burst: int


# Amazon's default usage plans, from the "Usage Plan" table of each operation in the SP-API
# models. A seller's real plan may be higher, and syncd then learns it from
# x-amzn-RateLimit-Limit.
DEFAULT_PLANS: dict[str, UsagePlan] = {
    "searchOrders": UsagePlan(0.0056, 20),
    "getOrder": UsagePlan(0.5, 30),
    "confirmShipment": UsagePlan(2.0, 10),
    "patchListingsItem": UsagePlan(5.0, 5),
    "createFeedDocument": UsagePlan(0.5, 15),
    "createFeed": UsagePlan(0.0083, 15),
    "getFeed": UsagePlan(2.0, 15),
    "createReport": UsagePlan(0.0167, 15),
    "getReports": UsagePlan(0.0222, 10),
    "getReport": UsagePlan(2.0, 15),
    "getReportDocument": UsagePlan(0.0167, 15),
    "getInventorySummaries": UsagePlan(2.0, 2),
    "listTransactions": UsagePlan(0.5, 10),
    "getMarketplaceParticipations": UsagePlan(0.016, 15),
}


@dataclass(frozen=True)
class BucketLevel:
    """A bucket's tokens and rate at one moment, as saved for the next process."""

    tokens: float  # below zero while callers are queued for tokens
    rate: float  # requests per second


MIN_RATE = 0.0001  # requests per second
MAX_RATE = 1000.0  # requests per second
# An operation without a known plan gets a cautious one until a header reports the real rate.
FALLBACK_PLAN = UsagePlan(0.5, 1)


def parse_rate_limit(value: str | None) -> float | None:
    """Parse an ``x-amzn-RateLimit-Limit`` value such as ``0.0167``; None when absent or bad.

    Rates outside 0.0001 to 1000 requests per second are ignored: Amazon's plans lie well
    inside, and a stray ``inf`` or ``1e-9`` from a proxy would switch pacing off or stall it.
    """
    if value is None:
        return None
    try:
        rate = float(value.strip())
    except ValueError:
        return None
    return rate if MIN_RATE <= rate <= MAX_RATE else None


class TokenBucket:
    """One thread-safe token bucket.

    A caller reserves a token first and sleeps afterwards, so waiting threads queue up in
    order and never spin. The level may go below zero: each unit below zero is one queued
    caller.
    """

    def __init__(
        self,
        plan: UsagePlan,
        *,
        clock: Callable[[], float] = monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._rate = plan.rate
        self._burst = float(plan.burst)
        self._tokens = float(plan.burst)
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._lock = threading.Lock()

    @property
    def rate(self) -> float:
        """The sustained rate in requests per second."""
        return self._rate

    @property
    def burst(self) -> int:
        """The bucket's capacity."""
        return int(self._burst)

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        self._updated = now

    def _threshold(self) -> float:
        """Tokens the bucket must hold before one is taken: one plus the latency margin."""
        return min(self._burst, 1.0 + LATENCY_MARGIN * self._rate)

    def reserve(self, deadline: float | None = None) -> float | None:
        """Take one token and return how many seconds the caller must wait before using it.

        With a ``deadline`` (on the bucket's clock), a token that would only be due after it
        is not taken, and None is returned.
        """
        with self._lock:
            now = self._clock()
            self._refill(now)
            threshold = self._threshold()
            wait = max(0.0, (threshold - self._tokens) / self._rate)
            if deadline is not None and now + wait > deadline:
                return None
            self._tokens -= 1.0
            return wait

    def wait_seconds(self) -> float:
        """Return how long a caller that reserved a token now would wait for it."""
        with self._lock:
            self._refill(self._clock())
            return max(0.0, (self._threshold() - self._tokens) / self._rate)

    def available(self) -> bool:
        """True when a token can be taken now without waiting."""
        with self._lock:
            self._refill(self._clock())
            return self._tokens >= self._threshold()

    def refund(self) -> None:
        """Give back a token whose request never reached Amazon."""
        with self._lock:
            self._refill(self._clock())
            self._tokens = min(self._burst, self._tokens + 1.0)

    def acquire(
        self, stop: threading.Event | None = None, deadline: float | None = None
    ) -> float | None:
        """Take one token, sleeping until it is due; return the seconds waited.

        Returns None, holding no token, when the token would be due after ``deadline`` or
        when ``stop`` is set before or during the wait.
        """
        if stop is not None and stop.is_set():
            return None
        wait = self.reserve(deadline)
        if wait is None or wait <= 0:
            return wait
        if stop is None:
            self._sleep(wait)
        elif stop.wait(wait):
            self.refund()
            return None
        return wait

    def update_rate(self, rate: float) -> bool:
        """Adopt the rate Amazon reported; return True when it changed."""
        with self._lock:
            if abs(rate - self._rate) <= self._rate * 1e-6:
                return False
            self._refill(self._clock())
            self._rate = rate
            return True

    def level(self) -> BucketLevel:
        """Return the tokens in the bucket now and its rate."""
        with self._lock:
            self._refill(self._clock())
            return BucketLevel(self._tokens, self._rate)

    def lower_to(self, tokens: float) -> None:
        """Hold at most ``tokens`` (capped at the burst); a lower level is kept."""
        with self._lock:
            self._refill(self._clock())
            self._tokens = min(self._tokens, self._burst, tokens)

    def drain(self) -> None:
        """Empty the bucket after a 429, so the next request waits a full refill interval."""
        with self._lock:
            self._refill(self._clock())
            self._tokens = min(self._tokens, 0.0)


class Pacer:
    """The buckets one call takes its token from: the account's, and the application's if set.

    It offers the bucket methods the client uses, so a call paces itself the same way with
    or without an application budget.
    """

    def __init__(self, bucket: TokenBucket, application: TokenBucket | None = None) -> None:
        self.bucket = bucket
        self.application = application

    def acquire(
        self, stop: threading.Event | None = None, deadline: float | None = None
    ) -> float | None:
        """Take a token from each bucket in turn; return the seconds waited in all.

        Returns None, holding no token, under the same conditions as
        :meth:`TokenBucket.acquire` for either bucket.
        """
        waited = self.bucket.acquire(stop, deadline)
        if waited is None or self.application is None:
            return waited
        more = self.application.acquire(stop, deadline)
        if more is None:
            self.bucket.refund()
            return None
        return waited + more

    def wait_seconds(self) -> float:
        """Return how long a call would wait now for the later of its two tokens."""
        waits = [self.bucket.wait_seconds()]
        if self.application is not None:
            waits.append(self.application.wait_seconds())
        return max(waits)

    def refund(self) -> None:
        """Give back the tokens of a request that never reached Amazon."""
        self.bucket.refund()
        if self.application is not None:
            self.application.refund()

    def drain(self) -> None:
        """Empty the account's bucket after a 429; the application's budget is ours to set."""
        self.bucket.drain()


class BucketRegistry:
    """The buckets of one process, keyed by (account, region, operation).

    With an ``application_budget`` (operation -> calls per second for the whole
    application), each operation in it also has one application-wide bucket.
    """

    def __init__(
        self,
        plans: dict[str, UsagePlan] | None = None,
        *,
        clock: Callable[[], float] = monotonic,
        sleep: Callable[[float], None] = time.sleep,
        application_budget: Mapping[str, float] | None = None,
    ) -> None:
        self._plans = dict(DEFAULT_PLANS if plans is None else plans)
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[tuple[str, str, str], TokenBucket] = {}
        self._lock = threading.Lock()
        self._budget = dict(application_budget or {})
        self._nodes = 1
        # A burst of one token: the live nodes together never send more than one call each
        # above the budget's rate, whatever the budget is.
        self._application = {
            operation: TokenBucket(UsagePlan(rate, 1), clock=clock, sleep=sleep)
            for operation, rate in self._budget.items()
        }

    def application_bucket(self, operation: str) -> TokenBucket | None:
        """Return the application-wide bucket of the operation, or None without a budget."""
        return self._application.get(operation)

    def pacer(self, account: str, region: str, operation: str) -> Pacer:
        """Return the buckets a call of this key takes its token from."""
        return Pacer(self.bucket(account, region, operation), self._application.get(operation))

    def share_application_budget(self, nodes: int) -> None:
        """Give this node its share of every application budget: the rate over ``nodes``."""
        nodes = max(1, nodes)
        with self._lock:
            if nodes == self._nodes:
                return
            self._nodes = nodes
        for operation, bucket in self._application.items():
            bucket.update_rate(self._budget[operation] / nodes)
        if self._application:
            log.info(
                "application_budget_shared",
                nodes=nodes,
                rates={op: round(rate / nodes, 6) for op, rate in sorted(self._budget.items())},
            )

    def bucket(self, account: str, region: str, operation: str) -> TokenBucket:
        """Return the bucket of this key, creating it from the operation's default plan."""
        key = (account, region, operation)
        with self._lock:
            found = self._buckets.get(key)
            if found is None:
                plan = self._plans.get(operation, FALLBACK_PLAN)
                found = TokenBucket(plan, clock=self._clock, sleep=self._sleep)
                self._buckets[key] = found
            return found

    def levels(self, account: str, region: str) -> dict[str, BucketLevel]:
        """Return the level of each bucket this process has for the account, by operation."""
        with self._lock:
            found = {
                operation: bucket
                for (owner, bucket_region, operation), bucket in self._buckets.items()
                if owner == account and bucket_region == region
            }
        return {operation: bucket.level() for operation, bucket in found.items()}

    def restore(
        self,
        account: str,
        region: str,
        levels: Mapping[str, BucketLevel],
        age_seconds: float,
    ) -> None:
        """Start from levels another process saved ``age_seconds`` ago.

        Each level is refilled for its age at its rate, and the bucket adopts that rate: it is
        the rate Amazon last reported for the seller, which a fresh process would otherwise
        only learn from its first response. A bucket never rises above its level in this
        process, and a level whose rate is out of bounds or whose tokens are not a finite
        number is ignored. Tokens below zero count as zero: they were callers queued in a
        process that has ended, and their calls were never sent.
        """
        age = max(0.0, age_seconds)
        for operation, saved in levels.items():
            if not (MIN_RATE <= saved.rate <= MAX_RATE) or not math.isfinite(saved.tokens):
                continue
            bucket = self.bucket(account, region, operation)
            bucket.update_rate(saved.rate)
            bucket.lower_to(max(0.0, saved.tokens) + age * saved.rate)

    def observe_rate_limit(
        self, account: str, region: str, operation: str, header: str | None
    ) -> None:
        """Adjust a bucket from a response's ``x-amzn-RateLimit-Limit`` header, if present."""
        rate = parse_rate_limit(header)
        if rate is None:
            return
        bucket = self.bucket(account, region, operation)
        previous = bucket.rate
        if bucket.update_rate(rate):
            log.info(
                "rate_limit_learned",
                account=account,
                region=region,
                operation=operation,
                rate=rate,
                previous_rate=previous,
            )
