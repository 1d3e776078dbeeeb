"""Figures for ``syncd status``, read from syncd's tables.

Lag is derived, not stored: an account's orders are complete up to its watermark, so the lag
of each of its marketplaces is the time since that watermark. The newest order update stored
per marketplace is shown beside it, because a quiet marketplace can be up to date and still
have no recent orders.

The metrics endpoint (:mod:`syncd.metrics`) reads its figures through these functions too,
so a scrape and ``syncd status`` count each figure with the same query.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from syncd.db import accounts, intake, outbox, quarantine, runs
from syncd.db.models import Checkpoint, Order, Quarantine, table_of

_ORDERS = table_of(Order)
_CHECKPOINTS = table_of(Checkpoint)
_QUARANTINE = table_of(Quarantine)


@dataclass(frozen=True)
class MarketplaceStatus:
    """Orders of one marketplace of an account."""

    marketplace_id: str
    orders: int
    newest_update: datetime | None


@dataclass
class AccountStatus:
    """Everything status shows about one account."""

    account: accounts.AccountRecord
    watermark: datetime | None
    lag: timedelta | None
    marketplaces: list[MarketplaceStatus] = field(default_factory=list)
    last_run: Any = None
    quarantined: int = 0  # open entries of every stream
    quarantined_by_stream: dict[str, int] = field(default_factory=dict)
    calls_last_hour: int = 0
    throttled_last_hour: int = 0


StoredOrders = dict[int, dict[str, MarketplaceStatus]]  # per account id and marketplace id


def gather_status(
    connection: Connection, now: datetime, stored_orders: StoredOrders | None = None
) -> list[AccountStatus]:
    """Read the status of every account.

    ``stored_orders`` is a result of :func:`count_stored_orders` to use instead of counting
    again, for a caller that refreshes the count less often than the other figures.
    """
    watermarks = {
        row.account_id: row.watermark
        for row in connection.execute(
            select(_CHECKPOINTS.c.account_id, _CHECKPOINTS.c.watermark).where(
                _CHECKPOINTS.c.stream == "orders"
            )
        )
    }
    per_marketplace = count_stored_orders(connection) if stored_orders is None else stored_orders
    last = runs.last_runs(connection, "orders")
    open_entries = count_open_quarantine(connection)
    recent = runs.recent_calls(connection, now - timedelta(hours=1))

    result = []
    for account in accounts.list_accounts(connection):
        watermark = watermarks.get(account.id)
        stored = per_marketplace.get(account.id, {})
        status = AccountStatus(
            account=account,
            watermark=watermark,
            lag=None if watermark is None else now - watermark,
            last_run=last.get(account.id),
            quarantined_by_stream=open_entries.get(account.id, {}),
        )
        status.quarantined = sum(status.quarantined_by_stream.values())
        for marketplace_id in account.marketplace_ids:
            status.marketplaces.append(
                stored.get(marketplace_id, MarketplaceStatus(marketplace_id, 0, None))
            )
        status.marketplaces.extend(
            entry for key, entry in sorted(stored.items()) if key not in account.marketplace_ids
        )
        calls = recent.get(account.id)
        if calls is not None:
            status.calls_last_hour = calls.api_calls
            status.throttled_last_hour = calls.throttled
        result.append(status)
    return result


def count_stored_orders(connection: Connection) -> StoredOrders:
    """Count the stored orders and find the newest update per account and marketplace.

    This reads every order row, because no index covers the account and the marketplace
    together, so its time grows with the orders table.
    """
    found: StoredOrders = {}
    query = select(
        _ORDERS.c.account_id,
        _ORDERS.c.marketplace_id,
        func.count(),
        func.max(_ORDERS.c.last_updated_time),
    ).group_by(_ORDERS.c.account_id, _ORDERS.c.marketplace_id)
    for account_id, marketplace_id, count, newest in connection.execute(query):
        found.setdefault(account_id, {})[marketplace_id or "-"] = MarketplaceStatus(
            marketplace_id or "-", int(count), newest
        )
    return found


def count_open_quarantine(connection: Connection) -> dict[int, dict[str, int]]:
    """Count the open quarantine entries per account id and stream."""
    query = (
        select(_QUARANTINE.c.account_id, _QUARANTINE.c.stream, func.count())
        .where(_QUARANTINE.c.status == quarantine.OPEN)
        .group_by(_QUARANTINE.c.account_id, _QUARANTINE.c.stream)
    )
    found: dict[int, dict[str, int]] = {}
    for account_id, stream, count in connection.execute(query):
        found.setdefault(int(account_id), {})[str(stream)] = int(count)
    return found


@dataclass(frozen=True)
class OrderCounts:
    """Stored orders of one marketplace, by status and by who fulfils them."""

    marketplace_id: str
    by_status: dict[str, int]
    fulfilled_by_amazon: int
    multichannel: int

    @property
    def total(self) -> int:
        """All orders of the marketplace."""
        return sum(self.by_status.values())


def count_orders(connection: Connection) -> list[OrderCounts]:
    """Count the stored orders per marketplace, status, fulfilment and channel."""
    query = select(
        _ORDERS.c.marketplace_id,
        _ORDERS.c.status,
        _ORDERS.c.fulfilled_by,
        _ORDERS.c.is_multichannel,
        func.count(),
    ).group_by(
        _ORDERS.c.marketplace_id,
        _ORDERS.c.status,
        _ORDERS.c.fulfilled_by,
        _ORDERS.c.is_multichannel,
    )
    found: dict[str, OrderCounts] = {}
    for marketplace_id, status, fulfilled_by, multichannel, count in connection.execute(query):
        key = marketplace_id or "-"
        entry = found.setdefault(key, OrderCounts(key, {}, 0, 0))
        entry.by_status[status or "-"] = entry.by_status.get(status or "-", 0) + int(count)
        found[key] = OrderCounts(
            key,
            entry.by_status,
            entry.fulfilled_by_amazon + (int(count) if fulfilled_by == "AMAZON" else 0),
            entry.multichannel + (int(count) if multichannel else 0),
        )
    return [found[key] for key in sorted(found)]


REJECTED_DAYS = 7  # how far back status counts rejected shipment requests


@dataclass(frozen=True)
class ShipmentFigures:
    """The outbox per account id and the rejected requests per account name."""

    now: datetime
    warning: timedelta
    outbox: dict[int, outbox.OutboxSummary]
    rejected: dict[str, int]
    new_requests: dict[str, int]  # per lower-case account name


def gather_shipments(connection: Connection, now: datetime, warning: timedelta) -> ShipmentFigures:
    """Read the outbox figures and recent rejections for ``syncd status``."""
    return ShipmentFigures(
        now=now,
        warning=warning,
        outbox=outbox.summarize(connection, now, warning),
        rejected=intake.count_rejected(connection, now - timedelta(days=REJECTED_DAYS)),
        new_requests=intake.count_new(connection),
    )
