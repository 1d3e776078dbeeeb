"""Run records: one row per job run and account, read by ``syncd status``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime

from sqlalchemy import Connection, func, insert, select

from syncd.db.models import Run, table_of

_TABLE = table_of(Run)

SUCCEEDED = "succeeded"
FAILED = "failed"
STOPPED = "stopped"


@dataclass
class RunSummary:
    """Outcome of one run, whose fields are also the keys of the run's summary log line."""

    account_id: int
    job: str
    started_at: datetime
    finished_at: datetime | None = None
    result: str = SUCCEEDED
    error: str | None = None
    orders_new: int = 0
    orders_updated: int = 0
    orders_quarantined: int = 0
    pages: int = 0
    api_calls: int = 0
    throttled: int = 0
    watermark_before: datetime | None = None
    watermark_after: datetime | None = None
    clock_skew_seconds: float | None = None
    extra: dict[str, object] = field(default_factory=dict, repr=False)


def record_run(connection: Connection, summary: RunSummary) -> None:
    """Store a finished run."""
    values = asdict(summary)
    values.pop("extra")
    connection.execute(insert(_TABLE).values(**values))


@dataclass(frozen=True)
class RecentCalls:
    """API calls and 429 responses of an account since a given time."""

    api_calls: int
    throttled: int


def recent_calls(connection: Connection, since: datetime) -> dict[int, RecentCalls]:
    """Return the calls and 429s of the runs that finished since ``since``, per account."""
    query = (
        select(_TABLE.c.account_id, func.sum(_TABLE.c.api_calls), func.sum(_TABLE.c.throttled))
        .where(_TABLE.c.finished_at >= since)
        .group_by(_TABLE.c.account_id)
    )
    return {
        int(account_id): RecentCalls(int(calls or 0), int(throttled or 0))
        for account_id, calls, throttled in connection.execute(query)
    }


def last_runs(connection: Connection, job: str) -> dict[int, object]:
    """Return each account's latest run of ``job`` (a row with every column)."""
    latest = (
        select(_TABLE.c.account_id, func.max(_TABLE.c.id).label("id"))
        .where(_TABLE.c.job == job)
        .group_by(_TABLE.c.account_id)
        .subquery()
    )
    query = select(_TABLE).join(latest, _TABLE.c.id == latest.c.id)
    return {int(row.account_id): row for row in connection.execute(query)}
