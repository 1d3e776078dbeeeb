"""Amazon's clock as seen from here: the local UTC clock corrected by the measured skew.

Amazon checks the two-minute rule (``*Before`` at least two minutes before now) against its own
clock, so a server whose clock runs fast sends bounds that Amazon rejects. Every response
carries a ``Date`` header; the skew is measured from it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

# Amazon rejects a *Before bound later than two minutes before its own now.
TWO_MINUTE_RULE = timedelta(minutes=2)


def utc_now() -> datetime:
    """Return the local clock as an aware UTC datetime."""
    return datetime.now(UTC)


class AmazonClock:
    """Tracks the offset between Amazon's clock and the local one, from the latest response.

    The ``Date`` header is truncated to the second, and a response that was slow to arrive
    makes Amazon's clock look later still, so the measured time is never ahead of Amazon's.
    The error of a sample therefore only moves window bounds earlier, which Amazon accepts,
    and taking the latest sample lets a change of either clock show at the next response.
    Thread-safe.
    """

    def __init__(self, now: Callable[[], datetime] = utc_now) -> None:
        self._now = now
        self._offset: float | None = None
        self._provisional = True
        self._lock = threading.Lock()

    @property
    def has_measurement(self) -> bool:
        """True once at least one ``Date`` header was read."""
        with self._lock:
            return self._offset is not None

    @property
    def skew_seconds(self) -> float:
        """Amazon's clock minus the local clock, in seconds (positive: Amazon is ahead)."""
        with self._lock:
            return self._offset or 0.0

    def observe_date_header(
        self, value: str | None, received_at: datetime | None = None, *, provisional: bool = False
    ) -> None:
        """Record one ``Date`` header; unparseable or missing values are ignored.

        A ``provisional`` sample (from the LWA token endpoint, which may be a vendor's own
        token service) is used only until the first SP-API response has been measured.
        """
        if not value:
            return
        try:
            remote = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return
        if remote.tzinfo is None:
            remote = remote.replace(tzinfo=UTC)
        local = received_at if received_at is not None else self._now()
        offset = (remote - local).total_seconds()
        with self._lock:
            if provisional and not self._provisional:
                return
            self._offset = offset
            self._provisional = provisional

    def now(self) -> datetime:
        """Return Amazon's current time as an aware UTC datetime."""
        return self._now() + timedelta(seconds=self.skew_seconds)

    def latest_before_bound(self, margin: timedelta) -> datetime:
        """Return the latest ``*Before`` value Amazon accepts now, minus ``margin``.

        The result is truncated to whole seconds because syncd sends times without fractions.
        """
        bound = self.now() - TWO_MINUTE_RULE - margin
        return bound.replace(microsecond=0)


def monotonic() -> float:
    """Return the monotonic clock in seconds (for token buckets and retry budgets)."""
    return time.monotonic()
