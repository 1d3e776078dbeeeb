"""The call log: one record per request the sandbox responded to, LWA included.

Tests and benchmarks count calls per operation, check the exact query a client sent (both
the first-occurrence values Amazon uses and every repeated value) and the body of a
confirmShipment, and see which fault fired. Control requests under ``/_sandbox/`` are not
recorded, so reading the log does not change it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from syncd.sandbox import clock

# Oldest records are dropped beyond this many, so a long benchmark cannot exhaust memory.
MAX_RECORDS = 200_000


@dataclass(frozen=True)
class CallRecord:
    """One request and its response. Never contains an access token, refresh token or secret."""

    sequence: int
    request_id: str
    sandbox_time: datetime
    wall_time: datetime
    region: str
    port: int
    operation: str  # operation id, "lwa", or "unknown" for a path the sandbox does not serve
    method: str
    path: str
    raw_query: str
    params: dict[str, str]  # first occurrence of each parameter, as Amazon reads them
    params_all: dict[str, list[str]]  # every value of every parameter, in order
    status: int
    seller_id: str | None
    faults: tuple[str, ...] = ()  # "<fault id>:<kind>" of each rule that fired
    duration_ms: float = 0.0
    # The request's JSON body as sent (text when it is not JSON), for operations that take
    # one such as confirmShipment; None for LWA and for requests without a body.
    body: Any = None

    def to_json(self) -> dict[str, Any]:
        """Return the record as a JSON-ready dict, times in RFC 3339."""
        return {
            "sequence": self.sequence,
            "request_id": self.request_id,
            "sandbox_time": clock.format_time(self.sandbox_time),
            "wall_time": clock.format_time(self.wall_time),
            "region": self.region,
            "port": self.port,
            "operation": self.operation,
            "method": self.method,
            "path": self.path,
            "raw_query": self.raw_query,
            "params": self.params,
            "params_all": self.params_all,
            "status": self.status,
            "seller_id": self.seller_id,
            "faults": list(self.faults),
            "duration_ms": round(self.duration_ms, 3),
            "body": self.body,
        }


class CallLog:
    """Records in arrival order. Not thread-safe: callers hold the state lock."""

    def __init__(self) -> None:
        self._records: list[CallRecord] = []
        self._next_sequence = 1

    def next_sequence(self) -> int:
        """Reserve the sequence number of the next record."""
        sequence = self._next_sequence
        self._next_sequence += 1
        return sequence

    def append(self, record: CallRecord) -> None:
        """Add one record, dropping the oldest beyond :data:`MAX_RECORDS`."""
        self._records.append(record)
        if len(self._records) > MAX_RECORDS:
            del self._records[: len(self._records) - MAX_RECORDS]

    def select(
        self,
        operation: str | None = None,
        region: str | None = None,
        status: int | None = None,
        seller_id: str | None = None,
    ) -> list[CallRecord]:
        """Return the records that match every filter given, oldest first."""
        return [
            record
            for record in self._records
            if (operation is None or record.operation == operation)
            and (region is None or record.region == region)
            and (status is None or record.status == status)
            and (seller_id is None or record.seller_id == seller_id)
        ]

    def clear(self) -> None:
        """Remove every record; sequence numbers keep counting."""
        self._records.clear()
