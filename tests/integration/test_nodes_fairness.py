"""One daemon, many accounts: a long backfill gives its worker back, the longest due go first."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import structlog

from syncd.amazon.throttle import BucketRegistry
from syncd.db import accounts, cursors, intake, runs
from syncd.jobs import orders
from syncd.jobs.orders import run_orders, run_orders_for_worker
from syncd.scheduler import Dispatcher
from tests.integration.orders_support import DE, FR, IT, US, JobWorld
from tests.integration.shipments_support import new_order, request, request_row


def _one_window(world: JobWorld) -> None:
    """Read the 30 days of backfill in one window, so its orders come in several pages."""
    world.ctx.settings = world.ctx.settings.model_copy(update={"orders_window_days": 30})


def _drain_search_quota(world: JobWorld, name: str) -> None:
    """Leave the account one searchOrders token, as after a burst of pages."""
    bucket = world.ctx.client.buckets.bucket(name, "eu", "searchOrders")
    while bucket.level().tokens >= 2:
        bucket.reserve()


def test_quota_wait_ends_worker_run(world: JobWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    # The sandbox refills 1000 times faster than Amazon, so a wait of a tenth of a second
    # here stands for minutes at Amazon.
    monkeypatch.setattr(orders, "QUOTA_WAIT_YIELD_SECONDS", 0.05)
    _one_window(world)
    account = world.add_account("big-eu", "eu", DE, FR, IT)
    _drain_search_quota(world, account.name)
    started = time.monotonic()

    with structlog.testing.capture_logs() as logs:
        summary = run_orders_for_worker(world.ctx, account)

    assert time.monotonic() - started < 30
    assert summary.result == runs.SUCCEEDED
    assert summary.pages == 1
    yielded = [entry for entry in logs if entry["event"] == "orders_run_yielded"]
    assert [entry["reason"] for entry in yielded] == ["quota_wait"]
    assert yielded[0]["next_run_in_seconds"] > 0
    with world.ctx.engine.begin() as connection:
        cursor = cursors.load_cursor(connection, account.id, orders.STREAM, world.ctx.now())
    assert cursor.has_open_window
    assert cursor.page_token is not None  # the next run resumes from page two
    assert cursor.watermark is None


def test_next_run_resumes_from_token(world: JobWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(orders, "QUOTA_WAIT_YIELD_SECONDS", 0.05)
    _one_window(world)
    account = world.add_account("big-eu", "eu", DE, FR, IT)
    _drain_search_quota(world, account.name)
    first = run_orders_for_worker(world.ctx, account)
    world.ctx.client.buckets = BucketRegistry()  # time passed: a full burst again
    world.sandbox.state.clear_calls()

    second = run_orders_for_worker(world.ctx, account)

    assert first.pages == 1
    assert second.watermark_after is not None
    assert len(world.stored_orders(account)) == len(world.amazon_orders(account))
    first_search = next(
        call for call in world.sandbox.state.calls() if call.operation == "searchOrders"
    )
    assert "paginationToken" in first_search.params


def test_one_off_run_waits_for_quota(world: JobWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    # `syncd once orders` reads to the bound, however long the quota makes it wait.
    monkeypatch.setattr(orders, "QUOTA_WAIT_YIELD_SECONDS", 0.05)
    monkeypatch.setattr(orders, "RUN_SECONDS", 0.0)
    _one_window(world)
    account = world.add_account("big-eu", "eu", DE, FR, IT)
    _drain_search_quota(world, account.name)

    summary = run_orders(world.ctx, account)

    assert summary.pages > 1
    assert summary.watermark_after is not None


def test_long_worker_run_yields_at_once(world: JobWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(orders, "RUN_SECONDS", 0.0)
    _one_window(world)
    account = world.add_account("big-eu", "eu", DE, FR, IT)

    with structlog.testing.capture_logs() as logs:
        summary = run_orders_for_worker(world.ctx, account)

    assert summary.pages == 1
    yielded = [entry for entry in logs if entry["event"] == "orders_run_yielded"]
    assert [entry["reason"] for entry in yielded] == ["run_time"]
    due = world.account(account.name).next_run_at
    assert due is not None
    assert due.replace(tzinfo=UTC) <= datetime.now(UTC) + timedelta(seconds=1)


def test_longest_due_account_goes_first(world: JobWorld) -> None:
    world.ctx.settings = world.ctx.settings.model_copy(update={"max_workers": 1})
    recent = world.add_account("a-recent", "na", US)
    oldest = world.add_account("b-oldest", "na", US)
    never = world.add_account("c-never-run", "na", US)
    now = datetime.now(UTC)
    with world.ctx.engine.begin() as connection:
        accounts.schedule_next(connection, recent.id, now - timedelta(minutes=1))
        accounts.schedule_next(connection, oldest.id, now - timedelta(minutes=30))
    dispatcher = Dispatcher(world.ctx)
    order: list[str] = []

    def record(ctx: object, account: accounts.AccountRecord) -> None:
        order.append(account.name)

    try:
        dispatcher._start(_due(world), dispatcher.running, dispatcher.pool, 1, record)
        deadline = time.monotonic() + 30
        while len(order) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        dispatcher.pool.shutdown(wait=True)

    assert [account.name for account in _due(world)] == [never.name, oldest.name, recent.name]
    assert order[0] == never.name


def _due(world: JobWorld) -> list[accounts.AccountRecord]:
    with world.ctx.engine.begin() as connection:
        return accounts.due_accounts(connection, datetime.now(UTC))


def test_freed_shipper_takes_next_account(world: JobWorld) -> None:
    world.ctx.settings = world.ctx.settings.model_copy(update={"shipment_workers": 1})
    submitted = []
    for name in ("a-shop", "b-shop", "c-shop"):
        account = world.add_account(name, "na", US)
        submitted.append(request(world, account, new_order(world, account)).request.id)
    dispatcher = Dispatcher(world.ctx)

    def statuses() -> list[str]:
        return [request_row(world, request_id).status for request_id in submitted]

    try:
        started = dispatcher.dispatch_shipments()  # once: no scheduler runs the later looks
        deadline = time.monotonic() + 60
        while intake.NEW in statuses() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        dispatcher.ship_pool.shutdown(wait=True)
        dispatcher.pool.shutdown(wait=True)

    assert started == 1
    assert statuses() == [intake.ACCEPTED] * 3
