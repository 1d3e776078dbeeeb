"""The sandbox clock: the host's UTC time shifted by an adjustable offset.

Everything time-dependent in the sandbox reads this clock: the ``Date`` response header,
the two-minute rule, access token expiry, page token age, token bucket refills and the
scheduled order changes. Shifting it simulates a skewed Amazon clock, or lets a test jump
a day ahead without waiting.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class SandboxClock:
    """A thread-safe UTC clock with an offset in seconds from the host clock."""

    def __init__(self, offset_seconds: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._offset = timedelta(seconds=offset_seconds)

    def now(self) -> datetime:
        """Return the sandbox's current time, timezone-aware in UTC."""
        with self._lock:
            offset = self._offset
        return datetime.now(UTC) + offset

    @property
    def offset_seconds(self) -> float:
        """Offset from the host clock in seconds; positive means the sandbox runs ahead."""
        with self._lock:
            return self._offset.total_seconds()

    def set_offset(self, seconds: float) -> None:
        """Set the offset from the host clock, replacing any earlier offset."""
        with self._lock:
            self._offset = timedelta(seconds=seconds)

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward by ``seconds`` (backward when negative) and return the new now."""
        with self._lock:
            self._offset += timedelta(seconds=seconds)
        return self.now()


def format_time(moment: datetime) -> str:
    """Format a time as Amazon does: RFC 3339 in UTC with a ``Z``, fractions only when present."""
    text = moment.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def parse_time(value: str) -> datetime | None:
    """Parse an ISO 8601 date or date-time; a value without an offset is taken as UTC.

    Returns:
        The aware datetime, or None when the value is not ISO 8601.
    """
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
