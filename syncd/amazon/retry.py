"""Retry policy: exponential backoff with jitter, bounded in attempts and in total time."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from syncd.config import Settings


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a transient failure is retried."""

    max_attempts: int = 5
    # Per call, after its first attempt: the backoff and the quota waits of the retries.
    # The first attempt waits for its quota token as long as the usage plan requires.
    max_seconds: float = 600.0
    base_delay: float = 1.0  # seconds before the first retry, on average
    max_delay: float = 60.0  # seconds; no single wait is longer
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """Build the policy from the ``SYNCD_RETRY_*`` settings."""
        return cls(
            max_attempts=settings.retry_max_attempts,
            max_seconds=settings.retry_max_seconds,
            base_delay=settings.retry_base_delay,
            max_delay=settings.retry_max_delay,
        )

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Return the wait in seconds after failed attempt number ``attempt`` (1-based).

        "Equal jitter": half of the exponential step is fixed and half is random, so waits
        grow with each attempt while clients that failed together spread out. A server's
        ``Retry-After`` is a lower bound.
        """
        step = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        wait = step / 2 + self.rng.uniform(0, step / 2)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_delay))
        return wait

    def allows(self, attempt: int, elapsed: float, next_delay: float) -> bool:
        """True when another attempt fits into both the attempt and the time budget."""
        return attempt < self.max_attempts and elapsed + next_delay <= self.max_seconds
