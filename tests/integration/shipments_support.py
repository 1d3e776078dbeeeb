"""Helpers for shipment tests: orders in the sandbox, requests in the intake, rows in the outbox."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from syncd.db import intake, outbox
from syncd.db.accounts import AccountRecord
from syncd.db.models import OutboxEntry, ShipmentRequest, table_of
from syncd.shipping.submit import Submitted, submit_shipment
from tests.integration.orders_support import JobWorld
from tests.sandbox.helpers import create_merchant_order

OUTBOX = table_of(OutboxEntry)
REQUESTS = table_of(ShipmentRequest)


def seller_token(account: AccountRecord) -> str:
    """The sandbox seller of an account added by :meth:`JobWorld.add_account`."""
    return f"Atzr|{account.name}"


def new_order(
    world: JobWorld, account: AccountRecord, quantities: Sequence[int] = (2, 1), **options: Any
) -> dict[str, Any]:
    """Create a merchant-fulfilled order of the account's seller in its first marketplace."""
    return create_merchant_order(
        world.sandbox,
        account.marketplace_ids[0],
        quantities,
        refresh_token=seller_token(account),
        **options,
    )


def request(
    world: JobWorld,
    account: AccountRecord,
    order: dict[str, Any] | str,
    *,
    key: str | None = None,
    tracking: str = "YT2618100710108810",
    carrier: str = "云途",
    shipped_at: datetime | None = None,
    items: Sequence[dict[str, Any]] | None = None,
    **fields: Any,
) -> Submitted:
    """Write one request into the intake as a WMS would, through the Python function."""
    order_id = order if isinstance(order, str) else order["orderId"]
    return submit_shipment(
        world.ctx.engine,
        account=account.name,
        order_id=order_id,
        carrier=carrier,
        tracking_number=tracking,
        shipped_at=shipped_at or datetime.now(UTC) - timedelta(minutes=5),
        source_system="wms",
        source_key=key or f"{order_id}:{tracking}",
        items=items,
        **fields,
    )


def request_row(world: JobWorld, request_id: int) -> intake.RequestRow:
    """Read an intake row back."""
    with world.ctx.engine.begin() as connection:
        found = intake.get_request(connection, request_id)
    assert found is not None
    return found


def outbox_rows(world: JobWorld, account: AccountRecord | None = None) -> list[outbox.OutboxRow]:
    """Every outbox row (of one account), oldest first."""
    with world.ctx.engine.begin() as connection:
        rows = outbox.list_rows(connection, account=None if account is None else account.name)
    return sorted(rows, key=lambda row: row.id)


def make_due(world: JobWorld) -> None:
    """Make every pending and delivered-unverified row due now, as if the backoff had passed."""
    past = datetime.now(UTC) - timedelta(seconds=1)
    with world.ctx.engine.begin() as connection:
        connection.execute(
            update(OUTBOX).where(OUTBOX.c.next_attempt_at.is_not(None)).values(next_attempt_at=past)
        )


def amazon_order(world: JobWorld, account: AccountRecord, order_id: str) -> dict[str, Any]:
    """The sandbox's own document of an order, packages included."""
    documents = world.sandbox.state.orders(
        seller_token(account), marketplace_ids=list(account.marketplace_ids)
    )
    return next(doc for doc in documents if doc["orderId"] == order_id)


def amazon_packages(world: JobWorld, account: AccountRecord, order_id: str) -> list[dict[str, Any]]:
    """The packages Amazon (the sandbox) holds for an order."""
    return world.sandbox.state.packages(seller_token(account), order_id)


def confirm_calls(world: JobWorld) -> list[Any]:
    """The sandbox's log of confirmShipment calls."""
    return [call for call in world.sandbox.state.calls() if call.operation == "confirmShipment"]


def request_count(world: JobWorld) -> int:
    """How many rows the intake holds."""
    with world.ctx.engine.begin() as connection:
        return len(connection.execute(select(REQUESTS.c.id)).all())
