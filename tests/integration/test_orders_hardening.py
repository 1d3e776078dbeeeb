"""The orders job against malformed pages, odd bounds, odd settings and a second process."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select, update

from syncd.amazon.client import CallRecord
from syncd.amazon.clock import utc_now
from syncd.amazon.orders import OrdersClient
from syncd.amazon.query import Query, format_time
from syncd.db import accounts, quarantine, runs
from syncd.db.models import Account, Lease, table_of
from syncd.jobs import orders as orders_job
from syncd.jobs.orders import run_orders
from tests.integration.orders_support import CHECKPOINTS, DATASETS, US, JobWorld

ACCOUNTS = table_of(Account)
LEASES = table_of(Lease)
CA = "A2EUQ1WTGCTBG2"


def _recently(world: JobWorld) -> str:
    """A lastUpdatedTime four minutes back: inside the next run's window at once."""
    moment = world.sandbox.state.now() - timedelta(minutes=4)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _settled_order(world: JobWorld) -> dict[str, Any]:
    """An order that no scheduled change of the sandbox will touch during the test."""
    documents = world.sandbox.state.orders("Atzr|acme-na", marketplace_ids=[US])
    return next(
        doc
        for doc in documents
        if doc["fulfillment"]["fulfillmentStatus"] in ("SHIPPED", "CANCELLED")
    )


def _open_entries(world: JobWorld) -> list[quarantine.QuarantineEntry]:
    with world.ctx.engine.begin() as connection:
        return quarantine.list_entries(connection)


def _search_calls(world: JobWorld) -> list[Any]:
    return world.sandbox.state.calls(operation="searchOrders")


# -- malformed orders -----------------------------------------------------------------------------


def test_item_with_text_fulfillment_is_quarantined(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    broken = _settled_order(world)["orderId"]
    item = {"orderItemId": "00000000000001", "quantityOrdered": 1, "fulfillment": "n/a"}
    world.sandbox.state.patch_order(
        "Atzr|acme-na",
        broken,
        changes={"orderItems": [item], "lastUpdatedTime": _recently(world)},
    )

    summary = run_orders(world.ctx, account)

    assert summary.result == runs.SUCCEEDED, summary.error
    assert summary.orders_quarantined == 1
    assert [entry.record_id for entry in _open_entries(world)] == [broken]


def test_order_that_is_no_object_is_quarantined(
    world: JobWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = world.add_account("acme-na", "na", US)
    real_fetch = OrdersClient._fetch

    def fetch_with_a_text_order(self: OrdersClient, query: Query) -> Any:
        body = real_fetch(self, query)
        if query.get("paginationToken") is None:
            body["orders"].append("not an order")
        return body

    monkeypatch.setattr(OrdersClient, "_fetch", fetch_with_a_text_order)

    summary = run_orders(world.ctx, account)

    entries = _open_entries(world)
    assert summary.result == runs.SUCCEEDED, summary.error
    assert summary.orders_quarantined >= 1
    assert entries[0].record_id is None
    assert entries[0].payload == '"not an order"'
    assert set(world.stored_orders(account)) == set(world.amazon_orders(account))


def test_order_id_too_long_for_its_column(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    long_id = "1" * 80
    world.sandbox.state.patch_order(
        "Atzr|acme-na",
        _settled_order(world)["orderId"],
        changes={"orderId": long_id, "lastUpdatedTime": _recently(world)},
    )

    first = run_orders(world.ctx, account)
    second = run_orders(world.ctx, account)

    entries = _open_entries(world)
    assert first.result == runs.SUCCEEDED, first.error
    assert second.result == runs.SUCCEEDED, second.error
    assert len(entries) == 1
    assert entries[0].record_id == "1" * 63 + "…"
    assert entries[0].attempts == 2
    assert long_id in entries[0].payload


def test_unexpected_error_still_records_the_run(
    world: JobWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = world.add_account("acme-na", "na", US)

    def broken_store(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("bug in the store")

    monkeypatch.setattr(orders_job, "store_orders", broken_store)

    summary = run_orders(world.ctx, account)

    with world.ctx.engine.begin() as connection:
        last = runs.last_runs(connection, "orders")[account.id]
        next_run = connection.execute(
            select(ACCOUNTS.c.next_run_at).where(ACCOUNTS.c.id == account.id)
        ).scalar_one()
    assert summary.result == runs.FAILED
    assert "bug in the store" in (summary.error or "")
    assert last.result == runs.FAILED
    assert next_run is not None


# -- bounds and windows ---------------------------------------------------------------------------


def test_earlier_bound_amazon_echoes_limits_watermark(
    world: JobWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = world.add_account("acme-na", "na", US)
    real_fetch = OrdersClient._fetch
    echoed: list[datetime] = []

    def fetch_with_earlier_bound(self: OrdersClient, query: Query) -> Any:
        body = real_fetch(self, query)
        sent = query.get("lastUpdatedBefore")
        assert sent is not None
        applied = datetime.fromisoformat(sent.replace("Z", "+00:00")) - timedelta(minutes=30)
        echoed.append(applied)
        body["lastUpdatedBefore"] = format_time(applied)
        body["orders"] = [
            order
            for order in body["orders"]
            if datetime.fromisoformat(order["lastUpdatedTime"].replace("Z", "+00:00")) < applied
        ]
        return body

    monkeypatch.setattr(OrdersClient, "_fetch", fetch_with_earlier_bound)

    summary = run_orders(world.ctx, account)

    watermark = world.watermark(account)
    assert summary.result == runs.SUCCEEDED, summary.error
    assert watermark is not None
    assert watermark <= max(echoed)
    assert set(world.stored_orders(account)) == set(world.amazon_orders(account))


def test_window_shorter_than_lookback_still_advances(world: JobWorld) -> None:
    world.ctx.settings = world.ctx.settings.model_copy(
        update={"orders_window_days": 0.5, "orders_lookback": 86_400.0, "orders_backfill_days": 2}
    )
    account = world.add_account("acme-na", "na", US)
    calls = 0

    def stop_after_many_calls(record: CallRecord) -> None:
        nonlocal calls
        if record.operation == "searchOrders":
            calls += 1
            if calls >= 60:
                world.ctx.stop.set()

    world.ctx.client.add_listener(stop_after_many_calls)
    outcome: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: outcome.update(summary=run_orders(world.ctx, account)))
    worker.start()
    worker.join(120)
    world.ctx.stop.set()
    worker.join(30)

    summary = outcome["summary"]
    recent = world.sandbox.state.now() - timedelta(days=1.5)  # well inside the backfill
    expected = {
        order_id
        for order_id, document in world.amazon_orders(account).items()
        if datetime.fromisoformat(document["lastUpdatedTime"].replace("Z", "+00:00")) > recent
    }
    assert summary.result == runs.SUCCEEDED, f"{summary.result} after {calls} calls"
    assert calls < 60
    assert expected
    assert expected <= set(world.stored_orders(account))


def test_empty_pages_within_the_limit_are_followed(
    world: JobWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.ctx.settings = world.ctx.settings.model_copy(update={"orders_window_days": 30})
    account = world.add_account("acme-na", "na", US)
    mark = "syncd-test-empty:"
    real_fetch = OrdersClient._fetch
    injected = False

    def fetch_with_empty_pages(self: OrdersClient, query: Query) -> Any:
        nonlocal injected
        token = query.get("paginationToken")
        if token is not None and token.startswith(mark):
            count, real_token = token[len(mark) :].split("|", 1)
            following = real_token if int(count) >= 5 else f"{mark}{int(count) + 1}|{real_token}"
            return {"orders": [], "pagination": {"nextToken": following}}
        body = real_fetch(self, query)
        next_token = (body.get("pagination") or {}).get("nextToken")
        if next_token and not injected:
            injected = True
            body["pagination"]["nextToken"] = f"{mark}1|{next_token}"
        return body

    monkeypatch.setattr(OrdersClient, "_fetch", fetch_with_empty_pages)

    summary = run_orders(world.ctx, account)

    assert injected, "the window had a single page; nothing was injected"
    assert summary.result == runs.SUCCEEDED, summary.error
    assert set(world.stored_orders(account)) == set(world.amazon_orders(account))


def test_stale_pages_limit_is_a_setting(world: JobWorld) -> None:
    world.ctx.settings = world.ctx.settings.model_copy(
        update={"orders_window_days": 30, "orders_max_stale_pages": 2}
    )
    account = world.add_account("acme-na", "na", US)
    world.sandbox.state.add_fault({"kind": "duplicate_pages", "operation": "searchOrders"})

    summary = run_orders(world.ctx, account)

    assert summary.result == runs.FAILED
    assert "SYNCD_ORDERS_MAX_STALE_PAGES" in (summary.error or "")
    assert world.watermark(account) is None


def test_page_token_without_open_window_is_ignored(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    assert run_orders(world.ctx, account).result == runs.SUCCEEDED
    with world.ctx.engine.begin() as connection:
        connection.execute(
            update(CHECKPOINTS)
            .where(CHECKPOINTS.c.account_id == account.id)
            .values(page_token="left-behind", page_query="x=1", page_token_at=utc_now())
        )
    world.sandbox.state.clear_calls()

    summary = run_orders(world.ctx, account)

    tokens = [call.params.get("paginationToken") for call in _search_calls(world)]
    assert summary.result == runs.SUCCEEDED, summary.error
    assert "left-behind" not in tokens


# -- accounts and leases --------------------------------------------------------------------------


def test_added_marketplace_gets_its_backfill(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    assert run_orders(world.ctx, account).result == runs.SUCCEEDED

    with world.ctx.engine.begin() as connection:
        account = accounts.save_account(
            connection,
            world.ctx.vault,
            name="acme-na",
            region="na",
            marketplace_ids=(US, CA),
            included_data=DATASETS,
            refresh_token=SecretStr("Atzr|acme-na"),
            now=utc_now(),
            replace=True,
        )
    assert world.watermark(account) is None
    summary = run_orders(world.ctx, account)

    canadian = {
        order_id
        for order_id, document in world.amazon_orders(account).items()
        if document["salesChannel"]["marketplaceId"] == CA
    }
    assert summary.result == runs.SUCCEEDED, summary.error
    assert canadian, "the sandbox generated no Canadian orders"
    assert canadian <= set(world.stored_orders(account))


def test_replaced_token_keeps_the_watermark(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    assert run_orders(world.ctx, account).result == runs.SUCCEEDED
    watermark = world.watermark(account)

    with world.ctx.engine.begin() as connection:
        accounts.save_account(
            connection,
            world.ctx.vault,
            name="acme-na",
            region="na",
            marketplace_ids=(US,),
            included_data=tuple(reversed(DATASETS)),
            refresh_token=SecretStr("Atzr|acme-na"),
            now=utc_now(),
            replace=True,
        )

    assert watermark is not None
    assert world.watermark(account) == watermark


def test_lease_taken_mid_run_stops_writing(
    world: JobWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.ctx.settings = world.ctx.settings.model_copy(update={"orders_window_days": 30})
    account = world.add_account("acme-na", "na", US)
    real_fetch = OrdersClient._fetch
    pages = 0

    def fetch_then_lose_lease(self: OrdersClient, query: Query) -> Any:
        nonlocal pages
        pages += 1
        if pages == 2:
            # Another node took the lease while this one waited for its quota.
            with world.ctx.engine.begin() as connection:
                connection.execute(
                    update(LEASES)
                    .where(LEASES.c.account_id == account.id)
                    .values(owner="other-node", expires_at=utc_now() + timedelta(hours=1))
                )
        return real_fetch(self, query)

    monkeypatch.setattr(OrdersClient, "_fetch", fetch_then_lose_lease)

    summary = run_orders(world.ctx, account)

    with world.ctx.engine.begin() as connection:
        cursor = connection.execute(
            select(CHECKPOINTS).where(CHECKPOINTS.c.account_id == account.id)
        ).one()
    assert summary.result == runs.FAILED
    assert summary.pages == 1
    assert "lease" in (summary.error or "")
    assert len(world.stored_orders(account)) == summary.orders_new
    assert cursor.page_token is not None  # page two's token: it is read again later
