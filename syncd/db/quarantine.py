"""Quarantine: records that could not be parsed or stored, kept until a retry succeeds.

One bad order never stops a run: it lands here with its reason and its raw JSON without
PII. A record quarantined again updates its entry instead of adding
one, and an entry is resolved as soon as the record is stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, insert, select, update

from syncd.db.models import ID_LENGTH, Quarantine, table_of

_TABLE = table_of(Quarantine)
OPEN = "open"
RESOLVED = "resolved"
# Characters kept of a failure's reason: at 4 bytes each it still fits MariaDB's 64 KiB TEXT.
MAX_REASON_LENGTH = 10_000


@dataclass(frozen=True)
class QuarantineEntry:
    """One quarantined record."""

    id: int
    account_id: int
    stream: str
    record_id: str | None
    reason: str
    payload: str
    status: str
    attempts: int
    created_at: datetime
    updated_at: datetime


def quarantine_record(
    connection: Connection,
    *,
    account_id: int,
    stream: str,
    record_id: str | None,
    reason: str,
    payload: str,
    now: datetime,
) -> int:
    """Quarantine a record, or count one more failure of an open entry; return its id.

    A record id longer than its column and a very long reason are shortened and end in "…",
    so that the entry always fits. The payload keeps the whole id.
    """
    record_id = _shortened(record_id, ID_LENGTH) if record_id is not None else None
    reason = _shortened(reason, MAX_REASON_LENGTH)
    if record_id is not None:
        found = connection.execute(
            select(_TABLE.c.id, _TABLE.c.attempts).where(
                _TABLE.c.account_id == account_id,
                _TABLE.c.stream == stream,
                _TABLE.c.record_id == record_id,
                _TABLE.c.status == OPEN,
            )
        ).first()
        if found is not None:
            connection.execute(
                update(_TABLE)
                .where(_TABLE.c.id == found.id)
                .values(reason=reason, payload=payload, attempts=found.attempts + 1, updated_at=now)
            )
            return int(found.id)
    result = connection.execute(
        insert(_TABLE).values(
            account_id=account_id,
            stream=stream,
            record_id=record_id,
            reason=reason,
            payload=payload,
            status=OPEN,
            attempts=1,
            created_at=now,
            updated_at=now,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def _shortened(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


def resolve_records(
    connection: Connection, account_id: int, stream: str, record_ids: Iterable[str], now: datetime
) -> int:
    """Mark the open entries of records that were stored after all as resolved."""
    ids = list(record_ids)
    if not ids:
        return 0
    result = connection.execute(
        update(_TABLE)
        .where(
            _TABLE.c.account_id == account_id,
            _TABLE.c.stream == stream,
            _TABLE.c.status == OPEN,
            _TABLE.c.record_id.in_(ids),
        )
        .values(status=RESOLVED, updated_at=now)
    )
    return int(result.rowcount)


def resolve_entry(connection: Connection, entry_id: int, now: datetime) -> None:
    """Mark one entry as resolved."""
    connection.execute(
        update(_TABLE).where(_TABLE.c.id == entry_id).values(status=RESOLVED, updated_at=now)
    )


def list_entries(
    connection: Connection, *, status: str | None = OPEN, account_id: int | None = None
) -> list[QuarantineEntry]:
    """Return quarantine entries, oldest first."""
    query = select(_TABLE).order_by(_TABLE.c.id)
    if status is not None:
        query = query.where(_TABLE.c.status == status)
    if account_id is not None:
        query = query.where(_TABLE.c.account_id == account_id)
    return [QuarantineEntry(**row._mapping) for row in connection.execute(query)]


def get_entry(connection: Connection, entry_id: int) -> QuarantineEntry | None:
    """Return one entry, or None."""
    row = connection.execute(select(_TABLE).where(_TABLE.c.id == entry_id)).first()
    return None if row is None else QuarantineEntry(**row._mapping)


def count_open(connection: Connection) -> dict[int, int]:
    """Return the number of open entries per account id."""
    query = (
        select(_TABLE.c.account_id, func.count())
        .where(_TABLE.c.status == OPEN)
        .group_by(_TABLE.c.account_id)
    )
    return {int(account_id): int(count) for account_id, count in connection.execute(query)}
