"""The orders job against the sandbox over real HTTP, on every database under test."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pydantic import SecretStr
from sqlalchemy import update

from syncd.db import accounts, runs
from syncd.jobs.orders import run_orders
from tests.integration.orders_support import (
    CHECKPOINTS,
    DE,
    FR,
    IT,
    JP,
    ORDERS,
    US,
    JobWorld,
    raw_of,
)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_first_run_backfills_every_order(world: JobWorld) -> None:
    account = world.add_account("acme-eu", "eu", DE, FR, IT)

    summary = run_orders(world.ctx, account)

    assert summary.result == runs.SUCCEEDED, summary.error
    stored = world.stored_orders(account)
    expected = world.amazon_orders(account)
    assert set(stored) == set(expected)
    assert {row.marketplace_id for row in stored.values()} == {DE, FR, IT}
    assert summary.orders_new == len(expected)
    for order_id, document in expected.items():
        row = stored[order_id]
        assert _iso(row.last_updated_time) == document["lastUpdatedTime"]
        assert _iso(row.purchase_time) == document["createdTime"]
        assert row.status == document["fulfillment"]["fulfillmentStatus"]
        assert row.item_count == sum(item["quantityOrdered"] for item in document["orderItems"])
        items = world.stored_items(row.id)
        assert [item.order_item_id for item in items] == sorted(
            item["orderItemId"] for item in document["orderItems"]
        )


def test_backfill_windows_end_at_bound(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)

    summary = run_orders(world.ctx, account)

    calls = world.sandbox.state.calls(operation="searchOrders")
    bound = world.watermark(account)
    assert bound is not None
    assert summary.watermark_after == bound
    assert bound <= world.sandbox.state.now() - timedelta(minutes=2)
    # Thirty days in windows of at most seven: five windows, each one call or more.
    afters = sorted({call.params["lastUpdatedAfter"] for call in calls})
    assert len(afters) == 5
    for call in calls:
        after = datetime.fromisoformat(call.params["lastUpdatedAfter"].replace("Z", "+00:00"))
        before = datetime.fromisoformat(call.params["lastUpdatedBefore"].replace("Z", "+00:00"))
        assert before - after <= timedelta(days=7)


def test_one_call_asks_for_every_marketplace(world: JobWorld) -> None:
    account = world.add_account("acme-eu", "eu", DE, FR, IT)

    run_orders(world.ctx, account)

    for call in world.sandbox.state.calls(operation="searchOrders"):
        assert call.params_all["marketplaceIds"] == [f"{DE},{FR},{IT}"]
        assert set(call.params["includedData"].split(",")) >= {"FULFILLMENT", "PROCEEDS"}
    assert world.sandbox.state.call_count(operation="getOrder") == 0


def test_incremental_run_finds_new_and_changed_orders(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    run_orders(world.ctx, account)
    before = world.stored_orders(account)

    changes = world.sandbox.state.evolve("Atzr|acme-na", 12, marketplace_ids=[US], ago=240)
    summary = run_orders(world.ctx, account)

    stored = world.stored_orders(account)
    created = [change["order_id"] for change in changes if change["change"] == "created"]
    moved = [change for change in changes if change["change"] == "status"]
    assert summary.result == runs.SUCCEEDED, summary.error
    assert summary.orders_new == len(created)
    assert summary.orders_updated == len(moved)
    assert set(created) <= set(stored)
    for change in moved:
        assert stored[change["order_id"]].status == change["status"]
        assert before[change["order_id"]].status == change["previous_status"]


def test_overlap_makes_no_duplicates(world: JobWorld) -> None:
    account = world.add_account("acme-fe", "fe", JP)
    run_orders(world.ctx, account)
    first = world.stored_orders(account)

    summary = run_orders(world.ctx, account)

    assert world.stored_orders(account).keys() == first.keys()
    assert summary.orders_new == 0
    assert summary.orders_updated == 0


def test_older_version_never_overwrites_newer(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    run_orders(world.ctx, account)
    order_id, row = next(iter(world.stored_orders(account).items()))
    newer = row.last_updated_time + timedelta(days=1)
    with world.ctx.engine.begin() as connection:
        connection.execute(
            update(ORDERS).where(ORDERS.c.id == row.id).values(last_updated_time=newer, status="X")
        )
        connection.execute(
            update(CHECKPOINTS).where(CHECKPOINTS.c.account_id == account.id).values(watermark=None)
        )

    run_orders(world.ctx, account)

    again = world.stored_orders(account)[order_id]
    assert again.last_updated_time == newer
    assert again.status == "X"


def test_pending_orders_store_without_prices(world: JobWorld) -> None:
    account = world.add_account("acme-eu", "eu", DE, FR, IT)

    run_orders(world.ctx, account)

    pending = [row for row in world.stored_orders(account).values() if row.status == "PENDING"]
    assert pending
    for row in pending:
        assert row.order_total is None
        assert row.currency is None
        for item in world.stored_items(row.id):
            assert item.unit_price is None
            assert item.proceeds_total is None


def test_amounts_are_exact_and_keep_their_currency(world: JobWorld) -> None:
    account = world.add_account("acme-fe", "fe", JP)

    run_orders(world.ctx, account)

    documents = world.amazon_orders(account)
    priced = [row for row in world.stored_orders(account).values() if row.order_total is not None]
    assert priced
    for row in priced:
        grand_total = documents[row.order_id]["proceeds"]["grandTotal"]
        assert row.order_total == Decimal(grand_total["amount"])
        assert row.currency == grand_total["currencyCode"] == "JPY"


def test_pii_is_encrypted_and_out_of_raw_json(world: JobWorld) -> None:
    account = world.add_account("acme-eu", "eu", DE)

    run_orders(world.ctx, account)

    documents = world.amazon_orders(account)
    with_buyer = [row for row in world.stored_orders(account).values() if row.buyer_pii]
    assert with_buyer
    for row in with_buyer:
        name = documents[row.order_id]["buyer"]["buyerName"]
        assert name not in row.buyer_pii
        assert json.loads(world.ctx.vault.decrypt(row.buyer_pii, "test"))["buyerName"] == name
        raw = raw_of(row)
        assert "buyer" not in raw
        assert "recipient" not in raw
        assert name not in row.raw_json


def test_missing_pii_keeps_stored_pii(world: JobWorld) -> None:
    account = world.add_account("acme-eu", "eu", DE)
    run_orders(world.ctx, account)
    with world.ctx.engine.begin() as connection:
        accounts.save_account(
            connection,
            world.ctx.vault,
            name="acme-eu",
            region="eu",
            marketplace_ids=(DE,),
            included_data=("FULFILLMENT", "PROCEEDS"),
            refresh_token=SecretStr("Atzr|acme-eu"),
            now=datetime.now(UTC),
            replace=True,
        )
    before = {oid: row.recipient_pii for oid, row in world.stored_orders(account).items()}
    changes = world.sandbox.state.evolve("Atzr|acme-eu", 8, marketplace_ids=[DE], ago=240)

    run_orders(world.ctx, world.account("acme-eu"))

    after = world.stored_orders(account)
    for change in changes:
        if change["change"] == "status" and before.get(change["order_id"]):
            assert after[change["order_id"]].recipient_pii == before[change["order_id"]]


def test_multichannel_orders_are_marked(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)

    run_orders(world.ctx, account)

    documents = world.amazon_orders(account)
    stored = world.stored_orders(account)
    mcf = {
        oid for oid, doc in documents.items() if doc["salesChannel"]["channelName"] == "NON_AMAZON"
    }
    assert mcf
    assert {oid for oid, row in stored.items() if row.is_multichannel} == mcf


def test_process_time_zone_does_not_change_stored_times(world: JobWorld) -> None:
    account = world.add_account("acme-fe", "fe", JP)
    old_tz = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Shanghai"
    time.tzset()
    try:
        run_orders(world.ctx, account)
    finally:
        if old_tz is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old_tz
        time.tzset()

    documents = world.amazon_orders(account)
    for order_id, row in world.stored_orders(account).items():
        assert _iso(row.purchase_time) == documents[order_id]["createdTime"]
        assert row.purchase_time.tzinfo is UTC
