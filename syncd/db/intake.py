"""The shipment intake table: requests written by ERPs, WMSs, ``syncd ship`` and Python code.

A request is identified by its ``(source_system, source_key)`` pair, unique in the table, so a
request written twice is one request: an ERP's second INSERT fails on the unique key (or is
skipped with ``INSERT IGNORE`` / ``ON CONFLICT DO NOTHING``), and :func:`insert_request`
returns the existing row instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, String, cast, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from syncd.db.models import ShipmentRequest, table_of

_REQUESTS = table_of(ShipmentRequest)

NEW = "new"
ACCEPTED = "accepted"
REJECTED = "rejected"
CONTRACT_VERSION = 1


@dataclass(frozen=True)
class RequestRow:
    """One intake row as syncd reads it."""

    id: int
    contract_version: int
    source_system: str
    source_key: str
    account: str
    amazon_order_id: str
    carrier: str | None
    carrier_name: str | None
    shipping_method: str | None
    tracking_number: str | None
    shipped_at: datetime | None  # None also when the stored value is not a date and time
    shipped_at_zone: str | None
    items: str | None
    status: str
    reject_code: str | None
    reject_reason: str | None
    outbox_id: int | None
    processed_at: datetime | None
    shipped_at_text: str | None = None  # the stored value as text, for error messages


def _requests() -> Any:
    """Select every column, ``shipped_at`` as text.

    ERPs write this table with their own tools: SQLite takes any text in a DATETIME column
    and MariaDB stores 0000-00-00 for an invalid date, either of which would make the
    driver fail on the whole row. Read as text, a bad value rejects only its request.
    """
    columns = [column for column in _REQUESTS.columns if column.name != "shipped_at"]
    return select(*columns, cast(_REQUESTS.c.shipped_at, String).label("shipped_at"))


def _parse_wall_clock(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        return None


def _row(mapping: Any) -> RequestRow:
    values = {
        name: mapping[name]
        for name in RequestRow.__dataclass_fields__
        if name not in ("shipped_at", "shipped_at_text")
    }
    text = mapping["shipped_at"]
    text = None if text is None else str(text)
    return RequestRow(shipped_at=_parse_wall_clock(text), shipped_at_text=text, **values)


def insert_request(connection: Connection, values: Mapping[str, Any]) -> tuple[RequestRow, bool]:
    """Insert a request; return it and True, or the row already there and False."""
    savepoint = connection.begin_nested()
    try:
        connection.execute(insert(_REQUESTS).values(**values))
        savepoint.commit()
        created = True
    except IntegrityError:
        savepoint.rollback()
        created = False
    found = connection.execute(
        _requests().where(
            _REQUESTS.c.source_system == values["source_system"],
            _REQUESTS.c.source_key == values["source_key"],
        )
    ).first()
    assert found is not None
    return _row(found._mapping), created


def new_requests(connection: Connection, account: str, limit: int) -> list[RequestRow]:
    """Return an account's unprocessed requests: never tried first, then least recently tried.

    Account names match without case and surrounding spaces, as everywhere in syncd (names
    are stored lower case).
    """
    query = (
        _requests()
        .where(
            _REQUESTS.c.status == NEW,
            func.lower(func.trim(_REQUESTS.c.account)) == normalize_account(account),
        )
        .order_by(_REQUESTS.c.processed_at.is_not(None), _REQUESTS.c.processed_at, _REQUESTS.c.id)
        .limit(limit)
    )
    return [_row(row._mapping) for row in connection.execute(query)]


def normalize_account(name: str) -> str:
    """Return an account name as the intake compares it: lower case, spaces trimmed.

    Only spaces, as SQL's TRIM removes them, so Python and the database agree on every row.
    """
    return name.strip(" ").lower()


def mark_tried(connection: Connection, request_id: int, now: datetime) -> None:
    """Record when syncd last tried a request that stays new (``processed_at``)."""
    connection.execute(
        update(_REQUESTS)
        .where(_REQUESTS.c.id == request_id, _REQUESTS.c.status == NEW)
        .values(processed_at=now)
    )


def accounts_with_new_requests(connection: Connection) -> set[str]:
    """Return the account names, in lower case, that unprocessed requests name."""
    query = select(_REQUESTS.c.account).where(_REQUESTS.c.status == NEW).distinct()
    return {normalize_account(str(name)) for name in connection.execute(query).scalars()}


def accept(connection: Connection, request_id: int, outbox_id: int, now: datetime) -> None:
    """Mark a request as moved into the outbox, clearing an earlier rejection."""
    connection.execute(
        update(_REQUESTS)
        .where(_REQUESTS.c.id == request_id)
        .values(
            status=ACCEPTED,
            outbox_id=outbox_id,
            reject_code=None,
            reject_reason=None,
            processed_at=now,
        )
    )


def reject(connection: Connection, request_id: int, code: str, reason: str, now: datetime) -> None:
    """Record why a request cannot be sent; the row stays for the ERP to read.

    The ERP may set ``status`` back to ``new`` once it fixed the cause; the request is then
    checked again.
    """
    connection.execute(
        update(_REQUESTS)
        .where(_REQUESTS.c.id == request_id)
        .values(status=REJECTED, reject_code=code, reject_reason=reason, processed_at=now)
    )


def reject_unknown_accounts(
    connection: Connection, known: set[str], reason: str, now: datetime
) -> list[RequestRow]:
    """Reject new requests that name no account (``known``: lower-case names); return them."""
    query = _requests().where(_REQUESTS.c.status == NEW)
    stray = [
        _row(row._mapping)
        for row in connection.execute(query)
        if normalize_account(str(row.account)) not in known
    ]
    if stray:
        connection.execute(
            update(_REQUESTS)
            .where(_REQUESTS.c.id.in_([row.id for row in stray]), _REQUESTS.c.status == NEW)
            .values(
                status=REJECTED,
                reject_code="unknown_account",
                reject_reason=reason,
                processed_at=now,
            )
        )
    return stray


def get_request(connection: Connection, request_id: int) -> RequestRow | None:
    """Return one request, or None."""
    found = connection.execute(_requests().where(_REQUESTS.c.id == request_id)).first()
    return None if found is None else _row(found._mapping)


def rejected_requests(
    connection: Connection, since: datetime, limit: int = 100
) -> list[RequestRow]:
    """Return requests rejected since ``since``, newest first."""
    query = (
        _requests()
        .where(_REQUESTS.c.status == REJECTED, _REQUESTS.c.processed_at >= since)
        .order_by(_REQUESTS.c.id.desc())
        .limit(limit)
    )
    return [_row(row._mapping) for row in connection.execute(query)]


def count_new(connection: Connection) -> dict[str, int]:
    """Return how many requests wait to be checked, per lower-case account name."""
    counts: dict[str, int] = {}
    query = select(_REQUESTS.c.account).where(_REQUESTS.c.status == NEW)
    for name in connection.execute(query).scalars():
        key = normalize_account(str(name))
        counts[key] = counts.get(key, 0) + 1
    return counts


def count_rejected(connection: Connection, since: datetime) -> dict[str, int]:
    """Return how many requests were rejected since ``since``, per lower-case account name."""
    counts: dict[str, int] = {}
    query = select(_REQUESTS.c.account).where(
        _REQUESTS.c.status == REJECTED, _REQUESTS.c.processed_at >= since
    )
    for name in connection.execute(query).scalars():
        key = normalize_account(str(name))
        counts[key] = counts.get(key, 0) + 1
    return counts
