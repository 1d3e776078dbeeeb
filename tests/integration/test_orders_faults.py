"""The orders job under Amazon's bad days: throttling, errors, tokens, broken orders."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
import structlog
from sqlalchemy import select, update
from sqlalchemy.exc import DataError

from syncd import cli
from syncd.db import accounts, quarantine, runs
from syncd.db.models import Account, table_of
from syncd.jobs import orders as orders_job
from syncd.jobs.orders import run_orders
from tests.integration.orders_support import CHECKPOINTS, DE, FR, IT, JP, US, JobWorld

ACCOUNTS = table_of(Account)


def _recently(world: JobWorld) -> str:
    """A lastUpdatedTime four minutes back: inside the next run's window at once."""
    moment = world.sandbox.state.now() - timedelta(minutes=4)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _one_window(world: JobWorld) -> None:
    """Read the whole backfill in one window, so it spans several pages."""
    world.ctx.settings = world.ctx.settings.model_copy(update={"orders_window_days": 30})


def _settled_order(world: JobWorld, refresh_token: str, marketplace_id: str) -> dict[str, Any]:
    """An order that no scheduled change of the sandbox will touch during the test."""
    documents = world.sandbox.state.orders(refresh_token, marketplace_ids=[marketplace_id])
    return next(
        doc
        for doc in documents
        if doc["fulfillment"]["fulfillmentStatus"] in ("SHIPPED", "CANCELLED")
    )


def _cursor(world: JobWorld, account_id: int) -> dict[str, object]:
    with world.ctx.engine.begin() as connection:
        row = connection.execute(
            select(CHECKPOINTS).where(CHECKPOINTS.c.account_id == account_id)
        ).one()
        return dict(row._mapping)


def test_429_storm_mid_paging_loses_nothing(world: JobWorld) -> None:
    account = world.add_account("acme-eu", "eu", DE, FR, IT)
    world.sandbox.state.add_fault(
        {"kind": "throttle", "operation": "searchOrders", "after": 2, "count": 3}
    )

    summary = run_orders(world.ctx, account)

    assert summary.result == runs.SUCCEEDED, summary.error
    assert summary.throttled == 3
    assert set(world.stored_orders(account)) == set(world.amazon_orders(account))


def test_server_errors_mid_paging_lose_nothing(world: JobWorld) -> None:
    account = world.add_account("acme-eu", "eu", DE, FR, IT)
    world.sandbox.state.add_fault(
        {"kind": "server_error", "operation": "searchOrders", "after": 2, "count": 2}
    )

    summary = run_orders(world.ctx, account)

    assert summary.result == runs.SUCCEEDED, summary.error
    assert set(world.stored_orders(account)) == set(world.amazon_orders(account))


def test_expired_token_mid_run_recovers(world: JobWorld) -> None:
    account = world.add_account("acme-eu", "eu", DE, FR, IT)
    world.sandbox.state.add_fault(
        {"kind": "expired_token", "operation": "searchOrders", "after": 3, "count": 1}
    )

    summary = run_orders(world.ctx, account)

    assert summary.result == runs.SUCCEEDED, summary.error
    assert world.sandbox.state.call_count(operation="lwa") == 2
    assert set(world.stored_orders(account)) == set(world.amazon_orders(account))


def test_repeated_page_token_keeps_the_watermark(world: JobWorld) -> None:
    account = world.add_account("acme-eu", "eu", DE, FR, IT)
    run_orders(world.ctx, account)
    before = world.watermark(account)
    world.sandbox.state.evolve("Atzr|acme-eu", 150, marketplace_ids=[DE, FR, IT], ago=240)
    world.sandbox.state.add_fault({"kind": "repeat_page", "operation": "searchOrders"})

    summary = run_orders(world.ctx, account)

    assert summary.result == runs.FAILED
    assert world.watermark(account) == before
    cursor = _cursor(world, account.id)
    assert cursor["page_token"] is None
    assert cursor["window_before"] is None
    world.sandbox.state.clear_faults()
    assert run_orders(world.ctx, account).result == runs.SUCCEEDED


def test_failed_run_resumes_from_the_stored_token(world: JobWorld) -> None:
    _one_window(world)
    account = world.add_account("acme-eu", "eu", DE, FR, IT)
    world.sandbox.state.add_fault({"kind": "server_error", "operation": "searchOrders", "after": 1})

    failed = run_orders(world.ctx, account)

    assert failed.result == runs.FAILED
    cursor = _cursor(world, account.id)
    token = cursor["page_token"]
    assert token is not None
    assert world.watermark(account) is None
    world.sandbox.state.clear_faults()
    world.sandbox.state.clear_calls()

    resumed = run_orders(world.ctx, account)

    first_call = world.sandbox.state.calls(operation="searchOrders")[0]
    assert resumed.result == runs.SUCCEEDED, resumed.error
    assert first_call.params.get("paginationToken") == token
    assert set(world.stored_orders(account)) == set(world.amazon_orders(account))


def test_stale_token_restarts_the_window(world: JobWorld) -> None:
    _one_window(world)
    account = world.add_account("acme-eu", "eu", DE, FR, IT)
    world.sandbox.state.add_fault({"kind": "server_error", "operation": "searchOrders", "after": 1})
    run_orders(world.ctx, account)
    world.sandbox.state.clear_faults()
    with world.ctx.engine.begin() as connection:
        connection.execute(
            update(CHECKPOINTS)
            .where(CHECKPOINTS.c.account_id == account.id)
            .values(page_token_at=world.ctx.now() - timedelta(hours=25))
        )
    world.sandbox.state.clear_calls()

    summary = run_orders(world.ctx, account)

    first_call = world.sandbox.state.calls(operation="searchOrders")[0]
    assert summary.result == runs.SUCCEEDED, summary.error
    assert "paginationToken" not in first_call.params
    assert set(world.stored_orders(account)) == set(world.amazon_orders(account))


def test_token_amazon_rejects_restarts_the_window_once(world: JobWorld) -> None:
    _one_window(world)
    account = world.add_account("acme-eu", "eu", DE, FR, IT)
    world.sandbox.state.add_fault({"kind": "server_error", "operation": "searchOrders", "after": 1})
    run_orders(world.ctx, account)
    world.sandbox.state.clear_faults()
    with world.ctx.engine.begin() as connection:
        connection.execute(
            update(CHECKPOINTS)
            .where(CHECKPOINTS.c.account_id == account.id)
            .values(page_token="bm90LWEtdG9rZW4=")
        )
    world.sandbox.state.clear_calls()

    summary = run_orders(world.ctx, account)

    statuses = [call.status for call in world.sandbox.state.calls(operation="searchOrders")]
    assert summary.result == runs.SUCCEEDED, summary.error
    assert statuses[0] == 400
    assert set(world.stored_orders(account)) == set(world.amazon_orders(account))


def test_revoked_token_marks_reauthorization(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    world.sandbox.state.revoke("Atzr|acme-na")

    summary = run_orders(world.ctx, account)

    assert summary.result == runs.FAILED
    assert world.account("acme-na").status == accounts.REAUTH_REQUIRED
    assert world.sandbox.state.call_count(operation="searchOrders") == 0
    with world.ctx.engine.begin() as connection:
        due = accounts.due_accounts(connection, world.ctx.now() + timedelta(days=1))
    assert "acme-na" not in {record.name for record in due}


def test_access_denied_is_retried_hourly(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    world.add_account("acme-eu", "eu", DE)
    world.sandbox.state.add_fault(
        {"kind": "access_denied", "operation": "searchOrders", "refresh_token": "Atzr|acme-na"}
    )

    denied = run_orders(world.ctx, account)
    other = run_orders(world.ctx, world.account("acme-eu"))

    assert denied.result == runs.FAILED
    assert other.result == runs.SUCCEEDED
    record = world.account("acme-na")
    assert record.status == accounts.ACCESS_DENIED
    assert record.next_run_at is not None
    assert record.next_run_at >= world.ctx.now() + timedelta(minutes=59)
    assert world.watermark(account) is None


def test_unparsable_order_quarantined_run_continues(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    broken = _settled_order(world, "Atzr|acme-na", US)["orderId"]
    world.sandbox.state.patch_order(
        "Atzr|acme-na",
        broken,
        changes={
            "orderItems": [{"orderItemId": 12345, "quantityOrdered": "x"}],
            "lastUpdatedTime": _recently(world),
        },
    )

    summary = run_orders(world.ctx, account)

    stored = world.stored_orders(account)
    assert summary.result == runs.SUCCEEDED, summary.error
    assert summary.orders_quarantined == 1
    assert broken not in stored
    assert len(stored) == len(world.amazon_orders(account)) - 1
    with world.ctx.engine.begin() as connection:
        entries = quarantine.list_entries(connection)
    assert [entry.record_id for entry in entries] == [broken]
    assert "buyer" not in entries[0].payload
    assert "orderItems" in entries[0].reason


def test_quarantined_order_resolves_when_fixed(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    document = _settled_order(world, "Atzr|acme-na", US)
    order_id = document["orderId"]
    items = document["orderItems"]
    broken = {
        "orderItems": [{"orderItemId": 1, "quantityOrdered": 1}],
        "lastUpdatedTime": _recently(world),
    }
    world.sandbox.state.patch_order("Atzr|acme-na", order_id, changes=broken)
    run_orders(world.ctx, account)
    with world.ctx.engine.begin() as connection:
        assert [entry.record_id for entry in quarantine.list_entries(connection)] == [order_id]
    fixed = {"orderItems": items, "lastUpdatedTime": _recently(world)}
    world.sandbox.state.patch_order("Atzr|acme-na", order_id, changes=fixed)
    with world.ctx.engine.begin() as connection:
        connection.execute(
            update(CHECKPOINTS).where(CHECKPOINTS.c.account_id == account.id).values(watermark=None)
        )

    run_orders(world.ctx, account)

    with world.ctx.engine.begin() as connection:
        open_entries = quarantine.list_entries(connection)
    assert open_entries == []
    assert order_id in world.stored_orders(account)


def test_run_is_recorded_and_next_run_scheduled(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)

    summary = run_orders(world.ctx, account)

    with world.ctx.engine.begin() as connection:
        last = runs.last_runs(connection, "orders")[account.id]
        next_run = connection.execute(
            select(ACCOUNTS.c.next_run_at).where(ACCOUNTS.c.id == account.id)
        ).scalar_one()
    assert last.orders_new == summary.orders_new
    assert last.api_calls == summary.api_calls >= 1
    assert next_run >= world.ctx.now() + timedelta(seconds=world.ctx.settings.orders_interval - 5)


def test_text_longer_than_its_column_is_quarantined(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    document = _settled_order(world, "Atzr|acme-na", US)
    items = document["orderItems"]
    items[0]["product"]["sellerSku"] = "S" * 300  # the column takes 200 characters
    world.sandbox.state.patch_order(
        "Atzr|acme-na",
        document["orderId"],
        changes={"orderItems": items, "lastUpdatedTime": _recently(world)},
    )

    summary = run_orders(world.ctx, account)

    stored = world.stored_orders(account)
    with world.ctx.engine.begin() as connection:
        entries = quarantine.list_entries(connection)
    assert summary.result == runs.SUCCEEDED, summary.error
    assert summary.orders_quarantined == 1
    assert document["orderId"] not in stored
    assert len(stored) == len(world.amazon_orders(account)) - 1
    assert "seller_sku is 300 characters long" in entries[0].reason


def test_order_the_database_rejects_is_quarantined(
    world: JobWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = world.add_account("acme-na", "na", US)
    rejected = _settled_order(world, "Atzr|acme-na", US)["orderId"]
    real_store = orders_job.store_orders

    def store_rejecting_one(connection: Any, account_id: int, batch: Any, now: Any) -> Any:
        # As a database would: the statement with the bad row fails as a whole.
        if any(rows.order_id == rejected for rows in batch):
            raise DataError("INSERT INTO syncd_orders", {}, Exception("value out of range"))
        return real_store(connection, account_id, batch, now)

    monkeypatch.setattr(orders_job, "store_orders", store_rejecting_one)

    summary = run_orders(world.ctx, account)

    stored = world.stored_orders(account)
    with world.ctx.engine.begin() as connection:
        entries = quarantine.list_entries(connection)
    assert summary.result == runs.SUCCEEDED, summary.error
    assert summary.orders_quarantined == 1
    assert rejected not in stored
    assert len(stored) == len(world.amazon_orders(account)) - 1
    assert [entry.record_id for entry in entries] == [rejected]
    assert entries[0].reason == "value out of range"


def _next_run_at(world: JobWorld, account_id: int) -> Any:
    with world.ctx.engine.begin() as connection:
        return connection.execute(
            select(ACCOUNTS.c.next_run_at).where(ACCOUNTS.c.id == account_id)
        ).scalar_one()


def test_refused_dataset_stops_one_region(world: JobWorld) -> None:
    # In August 2026, every FE searchOrders with FULFILLMENT got 400 InvalidInput for days
    # while the same request worked on NA. Without FULFILLMENT there is no
    # order status, so the FE watermark must hold until Amazon takes it again.
    japan = world.add_account("acme-fe", "fe", JP)
    america = world.add_account("acme-na", "na", US)
    assert run_orders(world.ctx, japan).result == runs.SUCCEEDED
    assert run_orders(world.ctx, america).result == runs.SUCCEEDED
    held = world.watermark(japan)
    america_before = world.watermark(america)
    fault = world.sandbox.state.add_fault(
        {"kind": "reject_dataset", "dataset": "FULFILLMENT", "region": "fe"}
    )
    time.sleep(0.01)

    with structlog.testing.capture_logs() as logs:
        failed = run_orders(world.ctx, japan)
        passed = run_orders(world.ctx, america)

    assert failed.result == runs.FAILED
    assert "FULFILLMENT" in (failed.error or "")
    assert world.watermark(japan) == held
    japan_now = world.account("acme-fe")
    assert japan_now.status == accounts.DATASET_UNAVAILABLE
    assert "FULFILLMENT" in (japan_now.status_reason or "")
    alerts = [entry for entry in logs if entry["event"] == "orders_dataset_unavailable"]
    assert len(alerts) == 1
    assert alerts[0]["dataset"] == "FULFILLMENT"
    assert alerts[0]["region"] == "fe"
    assert alerts[0]["request_id"]
    # The next try waits for the probe interval, not the normal one.
    assert _next_run_at(world, japan.id) - failed.finished_at >= timedelta(minutes=29)
    assert passed.result == runs.SUCCEEDED
    assert world.watermark(america) is not None
    assert america_before is not None
    assert world.watermark(america) >= america_before

    world.sandbox.state.remove_fault(fault)
    healed = run_orders(world.ctx, world.account("acme-fe"))

    assert healed.result == runs.SUCCEEDED, healed.error
    assert world.account("acme-fe").status == accounts.ACTIVE
    # The held window was read (its page came with FULFILLMENT) and closed.
    assert healed.pages >= 1
    healed_watermark = world.watermark(japan)
    assert healed_watermark is not None
    assert held is not None
    assert healed_watermark >= held
    assert _cursor(world, japan.id)["window_after"] is None


def test_refused_first_run_not_probed(world: JobWorld) -> None:
    # Without an earlier success the 400 may well be syncd's own mistake: no probing calls.
    japan = world.add_account("acme-fe", "fe", JP)
    world.sandbox.state.add_fault(
        {"kind": "reject_dataset", "dataset": "FULFILLMENT", "region": "fe"}
    )

    summary = run_orders(world.ctx, japan)

    assert summary.result == runs.FAILED
    assert world.sandbox.state.call_count(operation="searchOrders") == 1
    assert world.account("acme-fe").status == accounts.ACTIVE


def test_unexplained_invalid_input_fails(world: JobWorld) -> None:
    japan = world.add_account("acme-fe", "fe", JP)
    assert run_orders(world.ctx, japan).result == runs.SUCCEEDED
    world.sandbox.state.clear_calls()
    for dataset in japan.included_data:
        world.sandbox.state.add_fault({"kind": "reject_dataset", "dataset": dataset})
    time.sleep(0.01)

    summary = run_orders(world.ctx, japan)

    assert summary.result == runs.FAILED
    assert world.account("acme-fe").status == accounts.ACTIVE
    # The request, one repeat, then one probe per dataset.
    expected = 2 + len(japan.included_data)
    assert world.sandbox.state.call_count(operation="searchOrders") == expected


def _account_with_two_page_window(world: JobWorld) -> accounts.AccountRecord:
    """An EU account with a watermark, and 150 changes that its next window reads."""
    account = world.add_account("acme-eu", "eu", DE, FR, IT)
    assert run_orders(world.ctx, account).result == runs.SUCCEEDED
    world.sandbox.state.evolve("Atzr|acme-eu", 150, marketplace_ids=[DE, FR, IT], ago=240)
    time.sleep(0.01)
    return world.account("acme-eu")


def test_later_page_rejection_blames_no_dataset(world: JobWorld) -> None:
    account = _account_with_two_page_window(world)
    held = world.watermark(account)
    # Page two is refused twice; page one, with every set, is accepted both times.
    for after in (1, 3):
        world.sandbox.state.add_fault(
            {"kind": "reject_dataset", "dataset": "PROCEEDS", "after": after, "count": 1}
        )
    world.sandbox.state.clear_calls()

    summary = run_orders(world.ctx, account)

    assert summary.result == runs.FAILED
    assert "InvalidInput" in (summary.error or "")
    assert world.account("acme-eu").status == accounts.ACTIVE
    # The window, its repeat, and no probes.
    assert world.sandbox.state.call_count(operation="searchOrders") == 4
    assert world.watermark(account) == held


def test_rejection_after_bad_token_is_probed(world: JobWorld) -> None:
    account = _account_with_two_page_window(world)
    world.sandbox.state.add_fault({"kind": "server_error", "operation": "searchOrders", "after": 1})
    assert run_orders(world.ctx, account).result == runs.FAILED  # leaves a page token
    world.sandbox.state.clear_faults()
    with world.ctx.engine.begin() as connection:
        connection.execute(
            update(CHECKPOINTS)
            .where(CHECKPOINTS.c.account_id == account.id)
            .values(page_token="bm90LWEtdG9rZW4=")
        )
    world.sandbox.state.add_fault({"kind": "reject_dataset", "dataset": "FULFILLMENT", "after": 1})
    time.sleep(0.01)

    failed = run_orders(world.ctx, world.account("acme-eu"))

    assert failed.result == runs.FAILED
    assert world.account("acme-eu").status == accounts.DATASET_UNAVAILABLE
    assert "FULFILLMENT" in (failed.error or "")


def test_new_failure_replaces_dataset_status(
    world: JobWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    account = _account_with_two_page_window(world)
    fault = world.sandbox.state.add_fault({"kind": "reject_dataset", "dataset": "FULFILLMENT"})
    assert run_orders(world.ctx, account).result == runs.FAILED
    refused = world.account("acme-eu")
    assert refused.status == accounts.DATASET_UNAVAILABLE
    # The reason is the account's line in 'status', so it does not repeat the account name.
    assert not (refused.status_reason or "").startswith("acme-eu")
    world.sandbox.state.remove_fault(fault)
    world.sandbox.state.add_fault({"kind": "server_error", "operation": "searchOrders"})

    failed = run_orders(world.ctx, refused)

    assert failed.result == runs.FAILED
    assert world.account("acme-eu").status == accounts.ACTIVE
    capsys.readouterr()  # the world fixture's settings are the CLI's settings too
    assert cli.run(["status"]) == 0
    out = capsys.readouterr().out
    assert "acme-eu: the last run failed: searchOrders failed: HTTP 503" in out
    assert "FULFILLMENT" not in out
