"""Storing orders: batched upserts in which an older version never overwrites a newer one.

One page of orders is stored with a few statements: one read of the rows that exist, one
batched insert, one batched update, and the items of every inserted or changed order
replaced in two more. The caller commits the page together with its page token.

Amazon sends each order whole, so a newer version replaces the row. Two exceptions keep
data that a later response does not repeat. A missing part of the PII (buyer, recipient,
tax registrations, an item's gift message) means "not returned" and keeps the stored value.
An order whose ``lastUpdatedTime`` is older than the stored one is skipped.

An order whose PII the retention purge cleared (``pii_purged_at`` set) gets no PII again
from a later version, because Amazon keeps returning it after syncd's retention ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select, update

from syncd.db.models import Order, OrderItem, table_of
from syncd.db.order_rows import OrderRows, without_pii
from syncd.db.retention import ORDER_PII_COLUMNS

_ORDERS = table_of(Order)
_ITEMS = table_of(OrderItem)


@dataclass
class StoreResult:
    """Counts of one stored batch (new, updated, unchanged, older) and the ids stored."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0  # the same version again (re-read windows overlap)
    older_skipped: int = 0
    stored_ids: tuple[str, ...] = ()


def store_orders(
    connection: Connection, account_id: int, batch: Sequence[OrderRows], now: datetime
) -> StoreResult:
    """Insert new orders, update changed ones and replace their items.

    The same order may appear twice in a batch (pages have repeated orders); the newest
    version wins.
    """
    latest: dict[str, OrderRows] = {}
    for rows in batch:
        seen = latest.get(rows.order_id)
        if seen is None or rows.order["last_updated_time"] >= seen.order["last_updated_time"]:
            latest[rows.order_id] = rows
    if not latest:
        return StoreResult()

    # Lock the rows until the commit, so the comparison below still holds when another
    # writer (a quarantine retry, or a process that took over the lease) stores the same
    # orders. SQLite ignores FOR UPDATE; its writers take turns for the whole transaction.
    existing = _existing(connection, account_id, list(latest), lock=True)
    inserts: list[OrderRows] = []
    updates: list[tuple[int, OrderRows]] = []
    result = StoreResult()
    for order_id, rows in latest.items():
        found = existing.get(order_id)
        if found is None:
            inserts.append(rows)
        elif rows.order["last_updated_time"] < found["last_updated_time"]:
            result.older_skipped += 1
        elif rows.content_hash == found["content_hash"]:
            result.unchanged += 1
        elif found["pii_purged_at"] is not None:
            updates.append((found["id"], without_pii(rows)))
        else:
            updates.append((found["id"], rows))

    _insert_orders(connection, account_id, inserts, now)
    _update_orders(connection, updates, now)
    written = [*inserts, *(rows for _pk, rows in updates)]
    pks = _existing(connection, account_id, [rows.order_id for rows in written]) if inserts else {}
    order_pks = {rows.order_id: pks[rows.order_id]["id"] for rows in inserts}
    order_pks.update({rows.order_id: pk for pk, rows in updates})
    _replace_items(connection, written, order_pks)

    result.new = len(inserts)
    result.updated = len(updates)
    result.stored_ids = tuple(rows.order_id for rows in written)
    return result


def _existing(
    connection: Connection, account_id: int, order_ids: list[str], *, lock: bool = False
) -> dict[str, Any]:
    if not order_ids:
        return {}
    query = select(
        _ORDERS.c.id,
        _ORDERS.c.order_id,
        _ORDERS.c.last_updated_time,
        _ORDERS.c.content_hash,
        _ORDERS.c.pii_purged_at,
    ).where(_ORDERS.c.account_id == account_id, _ORDERS.c.order_id.in_(order_ids))
    if lock:
        query = query.with_for_update()
    return {row.order_id: row._mapping for row in connection.execute(query)}


def _insert_orders(
    connection: Connection, account_id: int, inserts: list[OrderRows], now: datetime
) -> None:
    if not inserts:
        return
    values = [
        {
            **rows.order,
            "account_id": account_id,
            "pii_updated_at": None if rows.pii.is_empty else now,
            "first_seen_at": now,
            "synced_at": now,
        }
        for rows in inserts
    ]
    connection.execute(insert(_ORDERS), values)


# PII columns of an order and the part of the PII that fills each.
_PII_COLUMNS = ORDER_PII_COLUMNS
_PII_PARTS = {
    "buyer_pii": "buyer",
    "recipient_pii": "recipient",
    "tax_registrations_pii": "tax_registrations",
}

# Columns an update sets from the new version; the PII columns are handled apart.
_UPDATED_COLUMNS = tuple(
    column.name
    for column in _ORDERS.columns
    if column.name
    not in {
        "id",
        "account_id",
        "order_id",
        *_PII_COLUMNS,
        "pii_updated_at",
        "pii_purged_at",  # set only by the purge, never by a new version
        "first_seen_at",
        "synced_at",
    }
)


def _update_orders(
    connection: Connection, updates: list[tuple[int, OrderRows]], now: datetime
) -> None:
    if not updates:
        return
    statement = (
        update(_ORDERS)
        .where(_ORDERS.c.id == bindparam("pk"))
        .values({name: bindparam(f"new_{name}") for name in _UPDATED_COLUMNS})
        .values(synced_at=bindparam("new_synced_at"))
    )
    values = [
        {
            "pk": pk,
            "new_synced_at": now,
            **{f"new_{name}": rows.order[name] for name in _UPDATED_COLUMNS},
        }
        for pk, rows in updates
    ]
    connection.execute(statement, values)

    # PII arrives only when it was requested and granted; absent means "not returned", so a
    # stored value stays until a version carries that part again.
    for column in _PII_COLUMNS:
        part = _PII_PARTS[column]
        carrying = [(pk, rows) for pk, rows in updates if getattr(rows.pii, part) is not None]
        if carrying:
            connection.execute(
                update(_ORDERS)
                .where(_ORDERS.c.id == bindparam("pk"))
                .values({column: bindparam("value"), "pii_updated_at": bindparam("at")}),
                [{"pk": pk, "value": rows.order[column], "at": now} for pk, rows in carrying],
            )
    # The purge finds orders with PII by pii_updated_at, so gift messages alone set it too.
    with_messages = [{"pk": pk, "at": now} for pk, rows in updates if rows.pii.gift_messages]
    if with_messages:
        connection.execute(
            update(_ORDERS)
            .where(_ORDERS.c.id == bindparam("pk"))
            .values(pii_updated_at=bindparam("at")),
            with_messages,
        )


def _replace_items(
    connection: Connection, written: list[OrderRows], order_pks: dict[str, int]
) -> None:
    if not written:
        return
    pks = list(order_pks.values())
    # A gift message, like other PII, is kept when a version does not carry it.
    kept_messages = {
        (row.order_pk, row.order_item_id): row.gift_message_pii
        for row in connection.execute(
            select(_ITEMS.c.order_pk, _ITEMS.c.order_item_id, _ITEMS.c.gift_message_pii).where(
                _ITEMS.c.order_pk.in_(pks), _ITEMS.c.gift_message_pii.is_not(None)
            )
        )
    }
    connection.execute(delete(_ITEMS).where(_ITEMS.c.order_pk.in_(pks)))
    values = []
    for rows in written:
        pk = order_pks[rows.order_id]
        for item in rows.items:
            value = {**item, "order_pk": pk}
            if value["gift_message_pii"] is None:
                value["gift_message_pii"] = kept_messages.get((pk, item["order_item_id"]))
            values.append(value)
    if values:
        connection.execute(insert(_ITEMS), values)


def count_orders(connection: Connection, account_id: int) -> int:
    """Return how many orders of the account are stored."""
    query = select(func.count()).select_from(_ORDERS).where(_ORDERS.c.account_id == account_id)
    return int(connection.execute(query).scalar_one())
