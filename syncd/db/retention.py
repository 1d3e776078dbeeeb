"""Buyer PII retention: when an order's PII expires, and the queries of the purge.

Amazon's Data Protection Policy keeps buyer PII at most 30 days after delivery. Orders API
v2026-01-01 reports no delivery time: a merchant package may carry the status DELIVERED, but
without a time, and FBA orders list no packages. So an order's retention period starts:

- for a shipped order (SHIPPED), at its latest delivery date (``deliver_by_latest``), or at
  its last update when Amazon gave no delivery date;
- for a cancelled or unfulfillable order, at its last update, when Amazon set that status;
- for any other status, not yet: the order is still open and its PII is needed.

The PII expires ``SYNCD_PII_RETENTION_DAYS`` after that start. This module defines the rule
in Python (:func:`retention_start`) and in SQL (:func:`expired_clause`,
:func:`retention_start_column`) side by side. Both syncd's purge and the bridge's ERP purge
use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    and_,
    case,
    func,
    or_,
    select,
    update,
)

from syncd.db.models import Order, OrderItem, table_of

_ORDERS = table_of(Order)
_ITEMS = table_of(OrderItem)

CLOSED_STATUSES = ("CANCELLED", "UNFULFILLABLE")
SHIPPED_STATUS = "SHIPPED"
# The encrypted PII columns of an order row; the item rows have gift_message_pii.
ORDER_PII_COLUMNS = ("buyer_pii", "recipient_pii", "tax_registrations_pii")


def retention_start(
    status: str | None, deliver_by: datetime | None, updated: datetime
) -> datetime | None:
    """Return when an order's PII retention period starts, or None while the order is open."""
    if status in CLOSED_STATUSES:
        return updated
    if status == SHIPPED_STATUS:
        return deliver_by or updated
    return None


def is_pii_expired(order: Any, now: datetime, days: int) -> bool:
    """Return whether ``days`` have passed since the order's retention period started.

    ``order`` is a row or object with ``status``, ``deliver_by_latest`` and
    ``last_updated_time``. The PII expires at the start plus ``days``, not after it.
    """
    start = retention_start(order.status, order.deliver_by_latest, order.last_updated_time)
    return start is not None and start + timedelta(days=days) <= now


def expired_clause(orders: Table, cutoff: datetime) -> ColumnElement[bool]:
    """Return the SQL condition of :func:`is_pii_expired`, with ``cutoff`` = now - days.

    Written as two ORed branches rather than a CASE, so that the database can use an index
    on ``status`` or ``last_updated_time`` where one exists.
    """
    shipped_start = func.coalesce(orders.c.deliver_by_latest, orders.c.last_updated_time)
    return or_(
        and_(orders.c.status.in_(CLOSED_STATUSES), orders.c.last_updated_time <= cutoff),
        and_(orders.c.status == SHIPPED_STATUS, shipped_start <= cutoff),
    )


def retention_start_column(orders: Table) -> ColumnElement[Any]:
    """Return the SQL value of :func:`retention_start`: NULL while the order is open."""
    return case(
        (orders.c.status.in_(CLOSED_STATUSES), orders.c.last_updated_time),
        (
            orders.c.status == SHIPPED_STATUS,
            func.coalesce(orders.c.deliver_by_latest, orders.c.last_updated_time),
        ),
        else_=None,
    )


def _holds_pii() -> ColumnElement[bool]:
    # Every store that writes PII, gift messages included, sets pii_updated_at, and the purge
    # sets pii_purged_at; so these two columns tell which orders hold PII.
    return and_(_ORDERS.c.pii_updated_at.is_not(None), _ORDERS.c.pii_purged_at.is_(None))


def expired_order_pks(connection: Connection, cutoff: datetime, limit: int) -> list[int]:
    """Return the primary keys of up to ``limit`` orders that hold PII past its retention.

    No order is asked for: purged orders leave the selection, so the next call returns the
    next ones. An ORDER BY id would make PostgreSQL walk the primary key past every purged
    order instead of using an index on the PII columns.

    Args:
        cutoff: now minus the retention period.
        limit: the page size.
    """
    query = select(_ORDERS.c.id).where(_holds_pii(), expired_clause(_ORDERS, cutoff)).limit(limit)
    return [int(pk) for pk in connection.execute(query).scalars()]


def clear_pii(
    connection: Connection, order_pks: Sequence[int], cutoff: datetime, now: datetime
) -> tuple[int, int]:
    """Set the PII columns of these orders and their items to NULL and mark them purged.

    The retention condition is checked again in the UPDATE, so an order that another
    process purged or changed since it was selected is left as it is.

    Returns:
        How many orders were purged, and how many gift messages were cleared.
    """
    if not order_pks:
        return 0, 0
    pks = list(order_pks)
    orders = connection.execute(
        update(_ORDERS)
        .where(_ORDERS.c.id.in_(pks), _holds_pii(), expired_clause(_ORDERS, cutoff))
        .values({**dict.fromkeys(ORDER_PII_COLUMNS), "pii_purged_at": now})
    )
    purged = select(_ORDERS.c.id).where(_ORDERS.c.id.in_(pks), _ORDERS.c.pii_purged_at.is_not(None))
    messages = connection.execute(
        update(_ITEMS)
        .where(_ITEMS.c.order_pk.in_(purged), _ITEMS.c.gift_message_pii.is_not(None))
        .values(gift_message_pii=None)
    )
    return int(orders.rowcount), int(messages.rowcount)


@dataclass(frozen=True)
class PiiFigures:
    """Orders that hold PII, how many of them are past retention, and the next expiry."""

    holding: int
    expired: int
    next_expiry: datetime | None  # of the orders still inside their retention period


def gather_pii_figures(connection: Connection, now: datetime, days: int) -> PiiFigures:
    """Count the orders that hold PII and find when the next one expires."""
    cutoff = now - timedelta(days=days)
    start = retention_start_column(_ORDERS)
    expired = func.sum(case((start <= cutoff, 1), else_=0))
    upcoming = func.min(case((start > cutoff, start), else_=None))
    row = connection.execute(
        select(func.count(), expired, upcoming).select_from(_ORDERS).where(_holds_pii())
    ).one()
    holding, expired_count, next_start = row
    return PiiFigures(
        holding=int(holding),
        expired=int(expired_count or 0),
        next_expiry=None if next_start is None else next_start + timedelta(days=days),
    )
