"""The shipment outbox: packages waiting for Amazon, claimed by one worker at a time.

A row's life::

    pending ──claim──> sending ──204──> delivered (then verified against Amazon's packages)
       ^                  │ 429/5xx/timeout: back to pending, later
       │                  │ 4xx: dead;  "already fulfilled": delivered or conflict
       └── retry ─────────┴─ dead / conflict (by an operator);  cancel: cancelled

A worker claims due rows in one short transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL
and MariaDB/MySQL, so workers skip each other's rows instead of waiting; SQLite's writers
take turns), commits, sends outside any transaction, and records the outcome in a second
transaction that matches only while its claim holds. A claim that is never finished expires,
and the row is sent again with the same ``packageReferenceId``: Amazon then edits the same
package, so a crash between Amazon's answer and the commit costs a resend, never a second
package.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, insert, or_, select, update

from syncd.amazon.shipments import PackageItem
from syncd.db.models import Account, Lease, OutboxEntry, table_of

_OUTBOX = table_of(OutboxEntry)
_ACCOUNTS = table_of(Account)
_LEASES = table_of(Lease)

PENDING = "pending"
SENDING = "sending"
DELIVERED = "delivered"
DEAD = "dead"
CONFLICT = "conflict"
CANCELLED = "cancelled"
STATES = (PENDING, SENDING, DELIVERED, DEAD, CONFLICT, CANCELLED)
# Rows whose package is, or will be, on Amazon: they count against what is left to ship.
ACTIVE_STATES = (PENDING, SENDING, DELIVERED)
# Rows that still need Amazon to learn something, for deadline warnings.
UNFINISHED_STATES = (PENDING, SENDING, DEAD, CONFLICT)
# A claim reads this many candidates per row it wants, so it still finds free rows when
# another worker has locked some of the earliest ones.
_CANDIDATES_PER_CLAIM = 4
# How many times a delivered row is looked for in the order's packages before syncd warns.
MAX_VERIFY_ATTEMPTS = 5


@dataclass(frozen=True)
class NewShipment:
    """A validated shipment, ready to be enqueued."""

    account_id: int
    marketplace_id: str
    order_id: str
    package_reference_id: str
    carrier_code: str
    carrier_name: str | None
    shipping_method: str | None
    tracking_number: str
    ship_date: datetime
    items: tuple[PackageItem, ...]
    deadline: datetime | None
    request_id: int | None = None


@dataclass(frozen=True)
class OutboxRow:
    """One outbox row as read back."""

    id: int
    account_id: int
    account: str
    marketplace_id: str
    order_id: str
    package_reference_id: str
    carrier_code: str
    carrier_name: str | None
    shipping_method: str | None
    tracking_number: str
    ship_date: datetime
    items: tuple[PackageItem, ...]
    state: str
    attempts: int
    next_attempt_at: datetime | None
    claimed_by: str | None
    deadline: datetime | None
    last_error_code: str | None
    last_error_message: str | None
    last_request_id: str | None
    sent_at: datetime | None
    verified_at: datetime | None
    verify_attempts: int
    created_at: datetime
    updated_at: datetime
    request_id: int | None


def dump_items(items: Iterable[PackageItem]) -> str:
    """Return the items as the JSON text the ``items`` column holds."""
    return json.dumps(
        [{"order_item_id": item.order_item_id, "quantity": item.quantity} for item in items],
        ensure_ascii=False,
    )


def load_items(text: str) -> tuple[PackageItem, ...]:
    """Read the ``items`` column back."""
    return tuple(
        PackageItem(str(entry["order_item_id"]), int(entry["quantity"]))
        for entry in json.loads(text)
    )


def _columns() -> list[Any]:
    return [*_OUTBOX.columns, _ACCOUNTS.c.name.label("account")]


def _row(mapping: Any) -> OutboxRow:
    values = {name: mapping[name] for name in OutboxRow.__dataclass_fields__ if name != "items"}
    return OutboxRow(items=load_items(mapping["items"]), **values)


def _select() -> Any:
    return select(*_columns()).join_from(_OUTBOX, _ACCOUNTS, _OUTBOX.c.account_id == _ACCOUNTS.c.id)


def enqueue(connection: Connection, shipment: NewShipment, now: datetime) -> int:
    """Insert a pending row, due at once; return its id."""
    result = connection.execute(
        insert(_OUTBOX).values(
            account_id=shipment.account_id,
            request_id=shipment.request_id,
            marketplace_id=shipment.marketplace_id,
            order_id=shipment.order_id,
            package_reference_id=shipment.package_reference_id,
            carrier_code=shipment.carrier_code,
            carrier_name=shipment.carrier_name,
            shipping_method=shipment.shipping_method,
            tracking_number=shipment.tracking_number,
            ship_date=shipment.ship_date,
            items=dump_items(shipment.items),
            state=PENDING,
            attempts=0,
            next_attempt_at=now,
            deadline=shipment.deadline,
            verify_attempts=0,
            created_at=now,
            updated_at=now,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def row_of_request(connection: Connection, request_id: int) -> int | None:
    """Return the id of the outbox row made from an intake request, or None."""
    query = select(_OUTBOX.c.id).where(_OUTBOX.c.request_id == request_id)
    value = connection.execute(query).scalar_one_or_none()
    return None if value is None else int(value)


def order_rows(connection: Connection, account_id: int, order_id: str) -> list[OutboxRow]:
    """Return every row of one order, oldest first, locked until the commit.

    The lock keeps two writers from giving two shipments of the order the same reference.
    """
    mine = and_(_OUTBOX.c.account_id == account_id, _OUTBOX.c.order_id == order_id)
    connection.execute(select(_OUTBOX.c.id).where(mine).with_for_update()).all()
    query = _select().where(mine).order_by(_OUTBOX.c.id)
    return [_row(row._mapping) for row in connection.execute(query)]


def _due(now: datetime) -> Any:
    return or_(
        and_(_OUTBOX.c.state == PENDING, _OUTBOX.c.next_attempt_at <= now),
        and_(_OUTBOX.c.state == SENDING, _OUTBOX.c.claim_expires_at < now),
    )


def claim_due(
    connection: Connection,
    account_id: int,
    *,
    owner: str,
    now: datetime,
    ttl: timedelta,
    limit: int,
) -> list[OutboxRow]:
    """Claim up to ``limit`` due rows of an account, earliest deadline first.

    Rows that another worker has locked are skipped, not waited for. The claim lasts until
    the caller records an outcome or ``ttl`` passes.
    """
    # Candidates first, without locks, then a locking read by primary key: InnoDB locks
    # every row a locking read examines, so one ordered FOR UPDATE over the account's rows
    # would lock them all and leave nothing for a second worker.
    candidates = list(
        connection.execute(
            select(_OUTBOX.c.id)
            .where(_OUTBOX.c.account_id == account_id, _due(now))
            .order_by(_OUTBOX.c.deadline.is_(None), _OUTBOX.c.deadline, _OUTBOX.c.id)
            .limit(limit * _CANDIDATES_PER_CLAIM)
        ).scalars()
    )
    if not candidates:
        return []
    locked = set(
        connection.execute(
            select(_OUTBOX.c.id)
            .where(_OUTBOX.c.id.in_(candidates), _due(now))
            .with_for_update(skip_locked=True)
        ).scalars()
    )
    ids = [row_id for row_id in candidates if row_id in locked][:limit]
    if not ids:
        return []
    connection.execute(
        update(_OUTBOX)
        .where(_OUTBOX.c.id.in_(ids))
        .values(state=SENDING, claimed_by=owner, claim_expires_at=now + ttl, updated_at=now)
    )
    rows = {
        row.id: _row(row._mapping)
        for row in connection.execute(_select().where(_OUTBOX.c.id.in_(ids)))
    }
    return [rows[row_id] for row_id in ids]


def finish(connection: Connection, row_id: int, owner: str, now: datetime, **values: Any) -> bool:
    """Record an outcome and end the claim; False when the claim was lost meanwhile."""
    result = connection.execute(
        update(_OUTBOX)
        .where(_OUTBOX.c.id == row_id, _OUTBOX.c.state == SENDING, _OUTBOX.c.claimed_by == owner)
        .values(claimed_by=None, claim_expires_at=None, updated_at=now, **values)
    )
    return result.rowcount == 1


def release_claims(connection: Connection, account_id: int, now: datetime) -> int:
    """Make rows of the account left in ``sending`` due again, at the start of its job.

    Called by the holder of the account's lease before it claims rows. Other processes no
    longer hold the lease, and this process runs one shipments job per account at a time, so
    a row still claimed by this process is left from an earlier run that a database outage cut
    short. A resend uses the same package reference, so a worker of an old holder that is
    still sending causes an edit of the same package at worst.
    """
    result = connection.execute(
        update(_OUTBOX)
        .where(_OUTBOX.c.account_id == account_id, _OUTBOX.c.state == SENDING)
        .values(
            state=PENDING,
            claimed_by=None,
            claim_expires_at=None,
            next_attempt_at=now,
            updated_at=now,
        )
    )
    return int(result.rowcount)


def unverified(
    connection: Connection, account_id: int, now: datetime, limit: int
) -> list[OutboxRow]:
    """Return delivered rows whose package has not yet been seen in the order, due now."""
    query = (
        _select()
        .where(
            _OUTBOX.c.account_id == account_id,
            _OUTBOX.c.state == DELIVERED,
            _OUTBOX.c.verified_at.is_(None),
            _OUTBOX.c.next_attempt_at.is_not(None),
            _OUTBOX.c.next_attempt_at <= now,
        )
        .order_by(_OUTBOX.c.next_attempt_at, _OUTBOX.c.id)
        .limit(limit)
    )
    return [_row(row._mapping) for row in connection.execute(query)]


def set_values(connection: Connection, row_id: int, now: datetime, **values: Any) -> None:
    """Change a row outside a claim (verification, operator commands)."""
    connection.execute(
        update(_OUTBOX).where(_OUTBOX.c.id == row_id).values(updated_at=now, **values)
    )


def postpone_account(
    connection: Connection, account_id: int, until: datetime, now: datetime
) -> int:
    """Make the account's pending rows wait at least until ``until``; return how many moved."""
    result = connection.execute(
        update(_OUTBOX)
        .where(
            _OUTBOX.c.account_id == account_id,
            _OUTBOX.c.state == PENDING,
            or_(_OUTBOX.c.next_attempt_at.is_(None), _OUTBOX.c.next_attempt_at < until),
        )
        .values(next_attempt_at=until, updated_at=now)
    )
    return int(result.rowcount)


def get_row(connection: Connection, row_id: int) -> OutboxRow | None:
    """Return one row, or None."""
    found = connection.execute(_select().where(_OUTBOX.c.id == row_id)).first()
    return None if found is None else _row(found._mapping)


def list_rows(
    connection: Connection,
    *,
    states: Sequence[str] = (),
    account: str | None = None,
    limit: int = 100,
) -> list[OutboxRow]:
    """Return rows, earliest deadline first, filtered by state and account name."""
    query = _select()
    if states:
        query = query.where(_OUTBOX.c.state.in_(states))
    if account is not None:
        query = query.where(_ACCOUNTS.c.name == account)
    query = query.order_by(_OUTBOX.c.deadline.is_(None), _OUTBOX.c.deadline, _OUTBOX.c.id)
    return [_row(row._mapping) for row in connection.execute(query.limit(limit))]


def _retryable() -> Any:
    # Dead and conflict rows, and delivered rows that Amazon's packages never showed.
    never_seen = and_(
        _OUTBOX.c.state == DELIVERED,
        _OUTBOX.c.verified_at.is_(None),
        _OUTBOX.c.verify_attempts >= MAX_VERIFY_ATTEMPTS,
    )
    return or_(_OUTBOX.c.state.in_((DEAD, CONFLICT)), never_seen)


def retry_rows(
    connection: Connection, row_ids: Sequence[int], now: datetime, reference: str | None = None
) -> int:
    """Make retryable rows pending again, due now; return how many changed.

    With ``reference`` the rows are sent under that package reference instead, which makes
    Amazon edit the package of that reference (a conflict settled in favour of this row).
    The attempt count starts again, so the first backoff is short.
    """
    if not row_ids:
        return 0
    values: dict[str, Any] = {
        "state": PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "verify_attempts": 0,
        "sent_at": None,
        "updated_at": now,
    }
    if reference is not None:
        values["package_reference_id"] = reference
    result = connection.execute(
        update(_OUTBOX).where(_OUTBOX.c.id.in_(row_ids), _retryable()).values(**values)
    )
    return int(result.rowcount)


def amend_row(
    connection: Connection,
    row_id: int,
    now: datetime,
    **values: Any,
) -> bool:
    """Change the carrier, tracking number or ship date of a row and send it again.

    The row keeps its package reference, so Amazon edits the package it already has. A row
    being sent right now (state ``sending``) or cancelled is left alone; the caller tries
    again later. Returns whether the row changed.
    """
    result = connection.execute(
        update(_OUTBOX)
        .where(_OUTBOX.c.id == row_id, _OUTBOX.c.state.in_((PENDING, DELIVERED, DEAD, CONFLICT)))
        .values(
            **values,
            state=PENDING,
            attempts=0,
            next_attempt_at=now,
            sent_at=None,
            verified_at=None,
            verify_attempts=0,
            last_error_code=None,
            last_error_message=None,
            updated_at=now,
        )
    )
    return bool(result.rowcount)


def reference_taken(connection: Connection, row: OutboxRow, reference: str) -> bool:
    """Return whether another row of the same order uses ``reference``."""
    query = select(_OUTBOX.c.id).where(
        _OUTBOX.c.account_id == row.account_id,
        _OUTBOX.c.order_id == row.order_id,
        _OUTBOX.c.package_reference_id == reference,
        _OUTBOX.c.id != row.id,
    )
    return connection.execute(query).first() is not None


def dead_ids(connection: Connection) -> list[int]:
    """Return the ids of every dead row."""
    return list(connection.execute(select(_OUTBOX.c.id).where(_OUTBOX.c.state == DEAD)).scalars())


def cancel_row(connection: Connection, row_id: int, now: datetime) -> bool:
    """Cancel a row that Amazon has not taken; False when its state does not allow it."""
    result = connection.execute(
        update(_OUTBOX)
        .where(_OUTBOX.c.id == row_id, _OUTBOX.c.state.in_((PENDING, DEAD, CONFLICT)))
        .values(state=CANCELLED, next_attempt_at=None, updated_at=now)
    )
    return result.rowcount == 1


def accounts_with_due_rows(connection: Connection, now: datetime) -> list[int]:
    """Return the ids of accounts that have rows to send or to verify now.

    That includes rows still claimed by a process that no longer holds the account's lease
    (it died or lost the lease): the next holder releases them at the start of its run
    instead of waiting for the claims to expire.
    """
    verify_due = and_(
        _OUTBOX.c.state == DELIVERED,
        _OUTBOX.c.verified_at.is_(None),
        _OUTBOX.c.next_attempt_at <= now,
    )
    query = select(_OUTBOX.c.account_id).where(or_(_due(now), verify_due)).distinct()
    found = {int(value) for value in connection.execute(query).scalars()}
    orphaned = (
        select(_OUTBOX.c.account_id)
        .join_from(_OUTBOX, _LEASES, _LEASES.c.account_id == _OUTBOX.c.account_id, isouter=True)
        .where(
            _OUTBOX.c.state == SENDING,
            or_(
                _LEASES.c.owner.is_(None),
                _LEASES.c.expires_at < now,
                _LEASES.c.owner != _OUTBOX.c.claimed_by,
            ),
        )
        .distinct()
    )
    found.update(int(value) for value in connection.execute(orphaned).scalars())
    return sorted(found)


@dataclass
class OutboxSummary:
    """Figures of the outbox for ``syncd status``, per account id."""

    by_state: dict[str, int] = field(default_factory=dict)
    oldest_pending: datetime | None = None
    near_deadline: int = 0
    unverified: int = 0  # delivered, and still not seen among the order's packages
    carrier_other: int = 0  # sent as carrier Other in the last 30 days

    @property
    def depth(self) -> int:
        """Rows waiting to be sent."""
        return self.by_state.get(PENDING, 0) + self.by_state.get(SENDING, 0)


def summarize(
    connection: Connection, now: datetime, warning: timedelta
) -> dict[int, OutboxSummary]:
    """Return the outbox figures of every account that has rows."""
    found: dict[int, OutboxSummary] = {}

    def entry(account_id: int) -> OutboxSummary:
        return found.setdefault(int(account_id), OutboxSummary())

    for account_id, state, count in connection.execute(
        select(_OUTBOX.c.account_id, _OUTBOX.c.state, func.count()).group_by(
            _OUTBOX.c.account_id, _OUTBOX.c.state
        )
    ):
        entry(account_id).by_state[str(state)] = int(count)
    for account_id, oldest in connection.execute(
        select(_OUTBOX.c.account_id, func.min(_OUTBOX.c.created_at))
        .where(_OUTBOX.c.state.in_((PENDING, SENDING)))
        .group_by(_OUTBOX.c.account_id)
    ):
        entry(account_id).oldest_pending = oldest
    for account_id, count in connection.execute(
        select(_OUTBOX.c.account_id, func.count())
        .where(
            _OUTBOX.c.state.in_(UNFINISHED_STATES),
            _OUTBOX.c.deadline.is_not(None),
            _OUTBOX.c.deadline <= now + warning,
        )
        .group_by(_OUTBOX.c.account_id)
    ):
        entry(account_id).near_deadline = int(count)
    for account_id, count in connection.execute(
        select(_OUTBOX.c.account_id, func.count())
        .where(
            _OUTBOX.c.state == DELIVERED,
            _OUTBOX.c.verified_at.is_(None),
            _OUTBOX.c.verify_attempts >= MAX_VERIFY_ATTEMPTS,
        )
        .group_by(_OUTBOX.c.account_id)
    ):
        entry(account_id).unverified = int(count)
    for account_id, count in connection.execute(
        select(_OUTBOX.c.account_id, func.count())
        .where(
            _OUTBOX.c.carrier_code == "Other",
            _OUTBOX.c.state.in_(ACTIVE_STATES),
            _OUTBOX.c.created_at >= now - timedelta(days=30),
        )
        .group_by(_OUTBOX.c.account_id)
    ):
        entry(account_id).carrier_other = int(count)
    return found


def near_deadline(
    connection: Connection, now: datetime, warning: timedelta, limit: int = 1000
) -> list[OutboxRow]:
    """Return unfinished rows of every account whose deadline is within ``warning``."""
    query = _select().where(
        _OUTBOX.c.state.in_(UNFINISHED_STATES),
        _OUTBOX.c.deadline.is_not(None),
        _OUTBOX.c.deadline <= now + warning,
    )
    query = query.order_by(_OUTBOX.c.deadline).limit(limit)
    return [_row(row._mapping) for row in connection.execute(query)]
