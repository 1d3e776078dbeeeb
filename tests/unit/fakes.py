"""In-memory stand-ins for time: a manual clock whose sleep advances it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class FakeTime:
    """A monotonic clock and a UTC wall clock that move only on advance() or sleep()."""

    def __init__(self, start: datetime | None = None) -> None:
        self.value = 1000.0
        self.start = start or datetime(2026, 5, 10, 12, 0, tzinfo=UTC)
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self.value

    def now(self) -> datetime:
        with self._lock:
            return self.start + timedelta(seconds=self.value - 1000.0)

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.value += seconds

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.value += seconds
